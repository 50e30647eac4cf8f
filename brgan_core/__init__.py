"""BR-GAN core: pure machine learning for bilateral mammography.

Preprocessing (DICOM pixel data to model input and back), dataset readers, the synthetic
bilateral phantom generator, the BR-GAN model, training and evaluation. Nothing in this
package talks to the network or imports the service (``plugin``) or ``pacs_adapters``.
"""

__version__ = "0.1.0"
