"""The state the CMS layer keeps between the calls of one run, in an object the caller owns."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType

from dcmseal.cms.buffers import Scratch
from dcmseal.cms.digest import HelperThreads
from dcmseal.cms.kdf import Pbkdf2Cache
from dcmseal.cms.recipients import RecipientTemplates
from dcmseal.cms.shapes import ShapeCache

__all__ = ["Context", "Handover", "context_for_call"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Handover:
    """What a worker process takes over from its parent's :class:`Context`: the keys derived so far (under the
    parent's slot key, so the worker finds them) and the ``fast`` switch. Plain bytes: it pickles."""

    kdf_entries: tuple[tuple[bytes, bytes], ...] = field(repr=False)
    kdf_slot_key: bytes = field(repr=False)
    fast: bool


@dataclass(eq=False, slots=True, kw_only=True)
class Context:
    """What the CMS layer keeps from one call to the next within a run (a medium, a batch, a scan).

    Nothing of it is process-wide: a workflow makes one context for its run and passes it down, and
    what the context holds goes when the run drops it. Every function of :mod:`dcmseal.cms` takes
    ``context=``; without one it makes its own, for that call only.

    - ``kdf_cache``: the keys derived so far, so a password derives its KEK once per (salt, iterations,
      PRF) per run; stored under an HMAC of the password, never the password.
    - ``fast``: take the fast paths (recipient DER from templates, lazy parsing of header shapes already
      parsed in full, plain DigestedData decrypted through reused buffers). ``False`` takes the general
      paths, which give the same bytes and the same errors (tests compare the two).
    - ``background``: hash and write on helper threads beside the cipher (``False`` in a pool worker when
      every core runs one: a helper thread would only add hand-offs).
    - ``templates``, ``shapes``: recipient templates and parsed shapes, keyed without secrets
      (``shapes.full_parses`` counts the full parses).
    - ``scratch``, ``helpers``: reused buffers (they hold the last chunks until reused) and helper threads.
    - ``fast_decrypts``: how many envelopes were decrypted through the plain DigestedData path.
    """

    kdf_cache: Pbkdf2Cache = field(default_factory=Pbkdf2Cache)
    fast: bool = True
    background: bool = True
    templates: RecipientTemplates = field(default_factory=RecipientTemplates, repr=False)
    shapes: ShapeCache = field(default_factory=ShapeCache, repr=False)
    scratch: Scratch = field(default_factory=Scratch, repr=False)
    helpers: HelperThreads = field(default_factory=HelperThreads, repr=False)
    fast_decrypts: int = field(default=0, repr=False)

    @property
    def threads(self) -> HelperThreads | None:
        """The helper threads to hash and write on, or None to do it inline."""
        return self.helpers if self.background else None

    def handover(self) -> Handover:
        """What a worker process of this run needs to go on from here (see :meth:`from_handover`)."""
        return Handover(
            kdf_entries=tuple(self.kdf_cache.export()), kdf_slot_key=self.kdf_cache.slot_key, fast=self.fast
        )

    @classmethod
    def from_handover(cls, handover: Handover, *, background: bool) -> Context:
        """The context of a worker process: its parent's derived keys, its own caches and threads."""
        context = cls(fast=handover.fast, background=background)
        context.kdf_cache.import_entries(list(handover.kdf_entries), handover.kdf_slot_key)
        return context

    def close(self) -> None:
        """Let the helper threads end (the context stays usable: they start again when needed)."""
        self.helpers.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@contextlib.contextmanager
def context_for_call(context: Context | None) -> Iterator[Context]:
    """``context``, or a context of this call's own, closed when the call ends."""
    if context is not None:
        yield context
        return
    with Context() as own:
        yield own
