"""The radiologist's view: OHIF 3.13.2 in headless Chromium against a local Orthanc."""
