"""The brgan-pacs service: configuration, DICOM listener, spool and index, study assembly,
Celery tasks, result writers and the ``brgan`` command line."""
