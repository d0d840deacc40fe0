"""A certificate credential: the client proves itself with a JWT signed by its certificate's
private key (``private_key_jwt``), as Microsoft Entra ID's "certificate credentials" page
describes: header ``alg`` PS256 and ``x5t#S256`` (the certificate's SHA-256 thumbprint), claims
``aud`` (the token URL), ``iss`` and ``sub`` (the client id), ``jti``, ``nbf``, ``iat`` and a short
``exp``. Needs the ``certificate`` extra (PyJWT with cryptography)."""

from __future__ import annotations

import base64
import time
import uuid
from pathlib import Path

from .auth import AccessToken, OAuthClientCredentials, Timeout
from .extras import MissingExtra

try:
    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
except ModuleNotFoundError as error:
    raise MissingExtra("A certificate credential", error.name or "jwt", "certificate") from error

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: how long an assertion may be used: Entra ID asks for minutes, not hours
ASSERTION_LIFETIME_S = 600


def thumbprint(certificate: x509.Certificate) -> str:
    """Base64url SHA-256 of the certificate's DER encoding, unpadded (``x5t#S256``)."""
    digest = certificate.fingerprint(hashes.SHA256())
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class ClientCertificate(OAuthClientCredentials):
    """An app registration's certificate: ``pem`` holds the private key and the certificate
    (a path to a PEM file, or its bytes), ``password`` the key's, if it is encrypted."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        pem: str | Path | bytes,
        scope: str,
        password: str | bytes | None = None,
    ):
        super().__init__(token_url, client_id, scope)
        data = pem if isinstance(pem, bytes) else Path(pem).read_bytes()
        self.certificate = x509.load_pem_x509_certificate(data)
        self.__key = serialization.load_pem_private_key(
            data, password=password.encode() if isinstance(password, str) else password
        )
        self.thumbprint = thumbprint(self.certificate)
        self.cache_key += f"|{self.thumbprint}"

    def fetch(self, timeout: Timeout) -> AccessToken:
        return self._grant(timeout, self._proof)

    def _proof(self) -> dict[str, str]:
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": self._assertion()}

    def _assertion(self) -> str:
        now = int(time.time())
        return jwt.encode(
            {
                "aud": self.token_url,
                "iss": self.client_id,
                "sub": self.client_id,
                "jti": str(uuid.uuid4()),
                "nbf": now,
                "iat": now,
                "exp": now + ASSERTION_LIFETIME_S,
            },
            self.__key,
            algorithm="PS256",
            headers={"typ": "JWT", "x5t#S256": self.thumbprint},
        )
