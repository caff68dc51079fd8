"""The CMS layer keeps its state in a context the caller owns (issue 17 §4): nothing process-wide."""

from __future__ import annotations

import io
import pickle

from dcmseal import cms

PASSWORD = b"Kestrel-amber-Lantern-orbit-velvet"
KDF = cms.Pbkdf2Params(salt=bytes(range(16)), iterations=1000, prf=cms.Prf.SHA256)
SPEC = cms.EnvelopeSpec(
    recipients=(cms.PasswordRecipient(password=PASSWORD, kdf=KDF),),
    content_cipher=cms.ContentCipher.AES256_CBC,
)


def _seal(payload: bytes, context: cms.Context | None = None) -> bytes:
    sink = io.BytesIO()
    cms.encrypt(io.BytesIO(payload), sink, SPEC, payload_size=len(payload), context=context)
    return sink.getvalue()


def _open(data: bytes, context: cms.Context | None = None) -> bytes:
    sink = io.BytesIO()
    cms.decrypt(
        io.BytesIO(data),
        sink,
        [cms.PasswordCredential(password=PASSWORD)],
        max_iterations=1000,
        context=context,
    )
    return sink.getvalue()


def test_a_run_derives_each_key_once_through_its_context() -> None:
    context = cms.Context()
    sealed = [_seal(bytes([n]) * 100, context) for n in range(3)]
    assert [_open(data, context) for data in sealed] == [bytes([n]) * 100 for n in range(3)]
    assert context.kdf_cache.derivations == 1  # sealing derived it; opening found it


def test_without_a_context_nothing_outlives_the_call() -> None:
    """Two calls without a context share nothing: each derives its key (no process-wide cache)."""
    data = _seal(b"payload")
    first, second = cms.Context(), cms.Context()
    _open(data, first)
    _open(data, second)
    assert (first.kdf_cache.derivations, second.kdf_cache.derivations) == (1, 1)


def test_a_handover_carries_the_derived_keys_and_no_password() -> None:
    parent = cms.Context(fast=False)
    data = _seal(b"payload", parent)
    handover = pickle.loads(pickle.dumps(parent.handover()))  # noqa: S301 (our own bytes, as a fork server sends them)
    assert PASSWORD not in pickle.dumps(handover)
    assert repr(handover) == "Handover(fast=False)"  # the keys never show in a repr
    worker = cms.Context.from_handover(handover, background=False)
    assert (worker.fast, worker.background, worker.threads) == (False, False, None)
    assert _open(data, worker) == b"payload"
    assert worker.kdf_cache.derivations == 0


def test_templates_and_shapes_are_keyed_without_secrets() -> None:
    context = cms.Context()
    _open(_seal(b"payload", context), context)
    assert PASSWORD not in pickle.dumps(list(context.templates._templates))
    assert all(KDF.salt not in shape for _spec, shape in context.shapes._shapes)


def test_a_context_closes_its_helper_threads_and_stays_usable() -> None:
    payload = bytes(3 << 20)  # chunks large enough to go to the helper threads
    with cms.Context() as context:
        assert _open(_seal(payload, context), context) == payload
        assert context.helpers._executors  # started when first needed
    assert not context.helpers._executors
    assert _open(_seal(payload, context), context) == payload
    context.close()
