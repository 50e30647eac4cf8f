"""Talking to PACSes: DIMSE C-STORE SCU, DICOMweb STOW-RS/QIDO, C-FIND/C-MOVE.

Never imports :mod:`plugin` or torch.
"""
