"""Local capture: agent and git hook handlers, per-line attribution, and the on-disk state they share.

The on-disk format lives in `<git common dir>/tracemark/` and is described in docs/capture.md.
Readers outside this package use `tracemark.capture.records` only. Everything on the hook path is
stdlib-only and keeps its imports small.
"""
