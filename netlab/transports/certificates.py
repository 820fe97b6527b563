"""TLS's certificates and contexts, for the ``tls`` transport (`tls.py`), and the same said.

A server given ``?cert=FILE&key=FILE`` presents that chain; one given neither makes a
throwaway CA (one per process, with trustme), issues itself a certificate for its host,
localhost, 127.0.0.1 and ::1, and writes the CA certificate to a private file removed at
exit, which its bound address names (``?ca=PATH``). A client verifies against ``?ca=FILE``,
or the system's trusted CAs without it; ``?insecure=1`` skips verification and says so in
a warning. Contexts are made once per CA file (and remade when the file changes).

`server_certificate_call`, `client_trust_calls` and `TLS_DEFAULTS` say what
`server_context` and `client_context` do, for `TlsTransport.plan` and
`TlsTransport.option_default` (``netlab addr explain``): beside them, so they stay true.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import ssl
import tempfile

from ..errors import AddressError
from .addresses import Address
from .base import OptionDefault

log = logging.getLogger("netlab.tls")

#: the options that are TLS's own, as opposed to TCP's
TLS_OPTIONS = frozenset({"cert", "key", "ca", "insecure"})

#: a peer's FIN without close_notify reads as end of stream, and leaves the stream usable
#: for sending (OpenSSL 3; Python exposes it since 3.10)
_IGNORE_UNEXPECTED_EOF: int = getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)


class _ThrowawayCA:
    """This process's own CA, made on first use, its certificate in a private file."""

    def __init__(self) -> None:
        import trustme  # only servers without a certificate need it

        self.ca = trustme.CA(organization_name="netlab throwaway CA")
        directory = tempfile.mkdtemp(prefix="netlab-tls-")
        atexit.register(shutil.rmtree, directory, True)
        self.path = os.path.join(directory, "ca.pem")
        self.ca.cert_pem.write_to_path(self.path)
        self._contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
        log.info("tls: no ?cert=FILE&key=FILE given: made a throwaway CA for this process; clients "
                 "verify the server with ?ca=%s", self.path)

    def server_context(self, identities: tuple[str, ...]) -> ssl.SSLContext:
        context = self._contexts.get(identities)
        if context is None:
            context = _new_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert(*identities).configure_cert(context)
            self._contexts[identities] = context
        return context


_throwaway: _ThrowawayCA | None = None


def throwaway_ca() -> _ThrowawayCA:
    global _throwaway
    if _throwaway is None:
        _throwaway = _ThrowawayCA()
    return _throwaway


def _new_context(purpose: ssl.Purpose) -> ssl.SSLContext:
    context = ssl.create_default_context(purpose)
    context.options |= _IGNORE_UNEXPECTED_EOF
    return context


def _identities(address: Address) -> tuple[str, ...]:
    """The names a throwaway server certificate is for: the host asked for, and loopback."""
    names = ["localhost", "127.0.0.1", "::1"]
    host = (address.host or "").partition("%")[0]
    if host and not address.is_wildcard and host not in names:
        names.insert(0, host)
    return tuple(names)


def _file_error(address: Address, option: str, path: str, exc: Exception) -> AddressError:
    if isinstance(exc, FileNotFoundError):
        why = "no such file"
    elif isinstance(exc, IsADirectoryError):
        why = "is a directory, not a file"
    elif isinstance(exc, PermissionError):
        why = "permission denied"
    elif isinstance(exc, ssl.SSLError):
        why = f"not usable: {exc.reason or exc}"
    else:
        why = str(exc)
    return AddressError(f"{address}: ?{option}={path}: {why}")


def server_context(address: Address) -> tuple[ssl.SSLContext, str | None]:
    """The context a server presents, and the CA file clients need (None if unknown).

    Raises: AddressError for a client option, a missing or unusable file."""
    cert, key, ca = address.str_option("cert"), address.str_option("key"), address.str_option("ca")
    if address.bool_option("insecure") is not None:
        raise AddressError(f"{address}: ?insecure= is a client option: a server always presents its certificate")
    if cert is None and key is None:
        if ca is not None:
            raise AddressError(f"{address}: ?ca= on a server names the CA of its ?cert=; without "
                               f"?cert=FILE&key=FILE a server makes its own CA (and prints it)")
        authority = throwaway_ca()
        return authority.server_context(_identities(address)), authority.path
    if cert is None or key is None:
        raise AddressError(f"{address}: a server needs both ?cert=FILE and ?key=FILE (or neither, "
                           f"for a throwaway certificate)")
    context = _new_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        # which file: a missing one is named; a pair that does not match is both
        for option, path in (("cert", cert), ("key", key)):
            if not os.path.isfile(path):
                raise _file_error(address, option, path, exc) from None
        raise AddressError(f"{address}: ?cert={cert}&key={key}: not a certificate (PEM) and its "
                           f"private key: {getattr(exc, 'reason', None) or exc}") from None
    if ca is not None and not os.path.isfile(ca):
        raise _file_error(address, "ca", ca, FileNotFoundError()) from None
    return context, ca


_client_contexts: dict[tuple[str | None, bool, int], ssl.SSLContext] = {}
_warned: set[str] = set()


def client_context(address: Address) -> ssl.SSLContext:
    """The context a client verifies the server with (cached: made once per CA file).

    Raises: AddressError for a server option, a missing or unusable CA file."""
    for option in ("cert", "key"):
        if address.str_option(option) is not None:
            raise AddressError(f"{address}: ?{option}= is a server option (netlab clients present "
                               f"no certificate)")
    ca = address.str_option("ca")
    insecure = bool(address.bool_option("insecure"))
    if insecure and ca is not None:
        raise AddressError(f"{address}: ?ca= verifies the server, ?insecure=1 skips verifying it: give one")
    stamp = 0
    if ca is not None:
        try:
            stamp = os.stat(ca).st_mtime_ns
        except OSError as exc:
            raise _file_error(address, "ca", ca, exc) from None
    key = (ca, insecure, stamp)
    context = _client_contexts.get(key)
    if context is None:
        context = _new_context(ssl.Purpose.SERVER_AUTH)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif ca is not None:
            try:
                context.load_verify_locations(cafile=ca)
            except (OSError, ssl.SSLError) as exc:
                raise _file_error(address, "ca", ca, exc) from None
        _client_contexts[key] = context
    if insecure and str(address) not in _warned:
        _warned.add(str(address))
        log.warning("tls: ?insecure=1: NOT verifying the certificate of %s: traffic is encrypted, but "
                    "to whoever answers; anyone on the path can read and change it", address.target_text())
    return context


# -- the same, said ----------------------------------------------------------------------


#: what a TLS option not given means (`Transport.option_default`): what server_context and
#: client_context do without it
TLS_DEFAULTS: dict[str, OptionDefault] = {
    "cert": (None, "not set (nor key): a throwaway certificate"),
    "key": (None, "not set (nor cert): a throwaway certificate"),
    "ca": (None, "not set: a client trusts the system's CAs"),
    "insecure": (None, "not set: a client verifies the server"),
}


def server_certificate_call(address: Address) -> str:
    """What `server_context` does for `address`."""
    cert, key, ca = address.str_option("cert"), address.str_option("key"), address.str_option("ca")
    if address.bool_option("insecure") is not None:
        return "refused: ?insecure= is a client option (a server always presents its certificate)"
    if cert is None and key is None:
        if ca is not None:
            return "refused: ?ca= on a server names the CA of its ?cert=; without ?cert=&key= it makes its own CA"
        names = ", ".join(_identities(address))
        return (f"no ?cert=&key=: a throwaway CA (trustme, one per process) issues a certificate for {names}; "
                f"its CA certificate goes to a private file (removed at exit) that the bound address names: "
                f"?ca=PATH, what a client needs")
    if cert is None or key is None:
        return "refused: a server needs both ?cert=FILE and ?key=FILE (or neither, for a throwaway certificate)"
    told = f"; the bound address names ?ca={ca} for clients" if ca is not None else ""
    return (f"ssl.create_default_context(CLIENT_AUTH).load_cert_chain({cert!r}, {key!r})  # the certificate "
            f"chain and its private key, PEM{told}")


def client_trust_calls(address: Address) -> tuple[str, str]:
    """What `client_context` does for `address`, and what the handshake then checks."""
    ca, insecure = address.str_option("ca"), bool(address.bool_option("insecure"))
    host = (address.host or "").partition("%")[0]  # what connect() passes as server_hostname
    context = "ssl.create_default_context(SERVER_AUTH)"
    if insecure:
        return (f"{context} with check_hostname=False, verify_mode=CERT_NONE  # ?insecure=1: the server is "
                f"NOT verified (a warning says so)", "the server's certificate is not checked, nor its name")
    if ca is not None:
        return (f"{context}.load_verify_locations({ca!r})  # trust the CA that signed the server's certificate",
                f"the server's certificate must chain to {ca!r} and name {host!r}")
    return (f"{context}  # this system's trusted CAs (?ca=FILE for a netlab server's own)",
            f"the server's certificate must chain to a CA this system trusts and name {host!r}")


__all__ = ["TLS_DEFAULTS", "TLS_OPTIONS", "client_context", "client_trust_calls", "server_certificate_call",
           "server_context", "throwaway_ca"]
