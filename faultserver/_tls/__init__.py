"""TLS material without I/O: throwaway CAs, one certificate per certificate fault, a user's pair.

- `certificates.py`: `Authority` (generate, issue one `CertifiedKey` per `CertificateMode`),
  `load_pair` (a user's PEM files), `write_ca` (the CA file a client is told to trust).

The ClientHello reader lives with the other protocols, in `faultserver._protocol.client_hello`.
"""

from .certificates import Authority as Authority
from .certificates import CertificateMode as CertificateMode
from .certificates import CertifiedKey as CertifiedKey
from .certificates import TLSMaterialError as TLSMaterialError
from .certificates import load_pair as load_pair
from .certificates import write_ca as write_ca

__all__ = ["Authority", "CertificateMode", "CertifiedKey", "TLSMaterialError", "load_pair", "write_ca"]
