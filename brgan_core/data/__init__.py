"""Dataset readers: turn a dataset on disk into (target, contralateral) pairs.

One module per dataset (:mod:`.manifest`, :mod:`.inbreast`, :mod:`.cbis_ddsm`,
:mod:`.vindr`); all of them build :class:`~brgan_core.data.records.ImageRecord`s and hand
them to :func:`~brgan_core.data.pairing.pair_images`, so every reader pairs, drops and counts
the same way. :func:`~brgan_core.data.readers.read_dataset` picks the reader by name and
:mod:`.splits` makes the patient-wise 8:1:1 split.
"""
