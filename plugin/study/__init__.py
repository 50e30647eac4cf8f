"""Study assembly, classification and pairing (DESIGN.md data flow steps 2–4).

Pure functions on header-only data; no torch, no pixel decoding:

- :class:`InstanceHeader` / :func:`read_header` — the header fields of one instance.
- :func:`classify` — laterality, view, usable? and the not-analyzed reason of one instance.
- :func:`plan_study` — the pairs (target, contralateral) of a study and a reason for every other
  instance.
- :func:`readiness` / :func:`needs_new_version` — when to queue a study, and when a late instance
  makes a new version.
"""

from plugin.study.assembly import NotReady, Ready, needs_new_version, readiness
from plugin.study.classify import Classification, classify
from plugin.study.header import HeaderError, InstanceHeader, read_header
from plugin.study.pairing import NO_CONTRALATERAL, Pair, StudyPlan, plan_study

__all__ = [
    "NO_CONTRALATERAL",
    "Classification",
    "HeaderError",
    "InstanceHeader",
    "NotReady",
    "Pair",
    "Ready",
    "StudyPlan",
    "classify",
    "needs_new_version",
    "plan_study",
    "read_header",
    "readiness",
]
