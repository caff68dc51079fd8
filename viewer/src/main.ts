// Entry point. INDEX.HTM loads VIEWER/VIEWER.JS and viewer/viewer.js (an ISO 9660 disc without Rock Ridge
// shows lowercase names on Linux): on systems where both resolve, only the first run starts the viewer.
import { exposed, startViewer } from "./ui";

declare global {
  interface Window {
    dcmseal?: typeof exposed;
  }
}

if (!window.dcmseal) {
  window.dcmseal = exposed;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startViewer);
  else startViewer();
}
