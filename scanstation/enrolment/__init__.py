"""The station's enrolment at the portal and its TLS client certificate (issue 15, scope 4, station side).

* :mod:`~scanstation.enrolment.request`: ``scanstation enrol --out FILE`` makes the enrolment request (station
  id, unit, the Ed25519 key that signs ``station.json``, and a CSR for a fresh ECDSA P-256 TLS key);
* :mod:`~scanstation.enrolment.install`: ``scanstation enrol --install CERT`` checks the portal's certificate
  bundle against the pending request and stores the certificate;
* :mod:`~scanstation.enrolment.client_tls`: what an upload presents: the installed certificate and its key,
  unsealed into the station's RAM directory for the life of the process.

Where everything lies is :mod:`~scanstation.enrolment.files`.  The TLS key is never on disk in the clear: it is
age-encrypted to the station's own recipient (like the batch keys), so making the request needs only the
station's public information (an admin does it on a locked station) and only the unlocked station can use it.
"""

from scanstation.enrolment.client_tls import ClientCertificate, client_credentials, installed_certificate
from scanstation.enrolment.files import EnrolmentFiles
from scanstation.enrolment.install import install_bundle
from scanstation.enrolment.request import REQUEST_FORMAT, make_request

__all__ = [
    "REQUEST_FORMAT", "ClientCertificate", "EnrolmentFiles", "client_credentials", "install_bundle",
    "installed_certificate", "make_request",
]
