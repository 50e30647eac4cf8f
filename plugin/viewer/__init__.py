"""A local Orthanc and the OHIF viewer, for people and for tests.

``brgan demo --viewer`` and ``scripts/viewer`` use them to show results the way a radiologist
sees them; the test suite (``tests/deploy/orthanc.py``, ``tests/viewer/harness.py``) and the
benchmarks use the same code, so what a person sees is what the tests check. Only the standard
library is imported here: no torch, no pynetdicom.

- :mod:`plugin.viewer.orthanc`: the Orthanc process (Debian package) with a config derived from
  ``deploy/orthanc/`` on loopback ports, and a small REST client.
- :mod:`plugin.viewer.ohif`: the prebuilt OHIF ``dist/`` and Orthanc's DICOMweb from one
  loopback origin.
"""
