"""Icinga 2 REST API client: the Icinga side of :mod:`~escalator_handlers.monitoring.feedback`.

Same interface as :class:`~escalator_handlers.monitoring.commandfile.CommandFile`
(``add_comment``, ``acknowledge``, ``passive_result``), implemented as POSTs to
``/v1/actions/...`` with basic auth (user plus a password file) and a CA
file for TLS.  Objects are selected with a filter whose values travel in
``filter_vars``, so host and service names are never spliced into the
filter expression.  Only the standard library is used (urllib, ssl).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import ssl
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional

from ..config import IcingaApi
from .commandfile import AUTHOR, MAX_TEXT, FeedbackError

log = logging.getLogger(__name__)


class IcingaClient:
    """Posts actions to one Icinga 2 API endpoint; raises FeedbackError."""

    def __init__(self, url: str, user: str, password: str, ca_file: Optional[str] = None,
                 timeout: float = 10.0, author: str = AUTHOR, server_name: Optional[str] = None):
        self.url = url.rstrip("/")
        self.author = author
        self.timeout = timeout
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._auth = f"Basic {token}"
        handlers: List[Any] = [urllib.request.ProxyHandler({})]  # the API is local: no proxies
        if self.url.startswith("https:"):
            try:
                context = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise FeedbackError(f"cannot load CA file {ca_file}: {exc}", self.url,
                                    unreachable=True) from None
            handlers.append(_NamedHTTPSHandler(context, server_name) if server_name
                            else urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    @classmethod
    def from_config(cls, api: IcingaApi, timeout: float = 10.0) -> "IcingaClient":
        """A client for ``nagios.icinga_api``; reads the password file now."""
        try:
            with open(api.password_file, encoding="utf-8") as f:
                password = f.readline().rstrip("\r\n")
        except OSError as exc:
            raise FeedbackError(f"cannot read Icinga API password file {api.password_file}: "
                                f"{exc.strerror}", api.url, unreachable=True) from None
        return cls(api.url, api.user, password, api.ca_file, timeout, server_name=api.server_name)

    def action(self, name: str, host: str, service: Optional[str], **params: Any) -> List[dict]:
        """POST /v1/actions/NAME for one host or service; return the results."""
        body: Dict[str, Any] = dict(params)
        if service is None:
            body.update(type="Host", filter="host.name==escalator_host",
                        filter_vars={"escalator_host": host})
        else:
            body.update(type="Service",
                        filter="host.name==escalator_host && service.name==escalator_service",
                        filter_vars={"escalator_host": host, "escalator_service": service})
        url = f"{self.url}/v1/actions/{name}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
            "Accept": "application/json",
            "Content-Type": "application/json",
            "Authorization": self._auth,
        })
        what = host if service is None else f"{host}/{service}"
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            if _results(raw) == []:
                # Icinga 2.13 answers a filter that matches nothing with
                # HTTP 500 and an empty result list.
                raise FeedbackError(f"Icinga API {name}: no object {what}", url) from None
            detail = _message(raw)
            unreachable = exc.code in (401, 403)
            if exc.code == 404 and not detail:
                detail = "no such object"
            raise FeedbackError(f"Icinga API {name} for {what}: HTTP {exc.code} {detail or exc.reason}",
                                url, unreachable=unreachable) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FeedbackError(f"Icinga API at {self.url} unreachable: {reason}", url,
                                unreachable=True) from None
        try:
            results = json.loads(payload or b"{}").get("results", [])
        except (ValueError, AttributeError):
            raise FeedbackError(f"Icinga API {name} for {what}: answer is not JSON", url) from None
        if not results:
            raise FeedbackError(f"Icinga API {name}: no object {what}", url)
        bad = [r for r in results if int(r.get("code", 200)) >= 300]
        if bad:
            raise FeedbackError(f"Icinga API {name} for {what}: "
                                + "; ".join(f"{r.get('code')} {r.get('status', '')}" for r in bad), url)
        log.debug("icinga %s %s: %s", name, what, results)
        return results

    def objects(self, kind: str, filter: Optional[str], attrs: List[str],
                filter_vars: Optional[Dict[str, Any]] = None) -> List[dict]:
        """The ``attrs`` of every object of ``kind`` (e.g. ``comments``) matching ``filter``
        (None: every object).

        A query travels as a POST with ``X-HTTP-Method-Override: GET`` (the
        API's documented way to send a filter in the body)."""
        url = f"{self.url}/v1/objects/{kind}"
        query: Dict[str, Any] = {"attrs": attrs}
        if filter:
            query["filter"] = filter
        if filter_vars:
            query["filter_vars"] = filter_vars
        body = json.dumps(query).encode()
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Accept": "application/json", "Content-Type": "application/json",
            "Authorization": self._auth, "X-HTTP-Method-Override": "GET"})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                payload = response.read()
            results = json.loads(payload or b"{}").get("results", [])
        except urllib.error.HTTPError as exc:
            raise FeedbackError(f"Icinga API query {kind}: HTTP {exc.code} {_message(exc.read()) or exc.reason}",
                                url, unreachable=exc.code in (401, 403)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise FeedbackError(f"Icinga API at {self.url} unreachable: {getattr(exc, 'reason', exc)}", url,
                                unreachable=True) from None
        except (ValueError, AttributeError):
            raise FeedbackError(f"Icinga API query {kind}: answer is not JSON", url) from None
        return [r.get("attrs") or {} for r in results if isinstance(r, dict)]

    def add_comment(self, host: str, service: Optional[str], text: str) -> None:
        self.action("add-comment", host, service, author=self.author, comment=_text(text))

    def acknowledge(self, host: str, service: Optional[str], text: str) -> None:
        self.action("acknowledge-problem", host, service, author=self.author, comment=_text(text),
                    sticky=False, notify=False, persistent=False)

    def passive_result(self, host: str, service: Optional[str], code: int, output: str) -> None:
        self.action("process-check-result", host, service, exit_status=int(code),
                    plugin_output=_text(output))


class _NamedHTTPSHandler(urllib.request.HTTPSHandler):
    """HTTPS that verifies the certificate against ``name`` instead of the URL's host
    (``nagios.icinga_api.server_name``: the API reached at 127.0.0.1, its certificate
    issued to the node's name)."""

    def __init__(self, context: ssl.SSLContext, name: str):
        super().__init__(context=context)
        self._ctx, self._name = context, name

    def https_open(self, req: Any) -> Any:
        ctx, name = self._ctx, self._name

        class Connection(http.client.HTTPSConnection):
            def connect(self) -> None:
                http.client.HTTPConnection.connect(self)
                self.sock = ctx.wrap_socket(self.sock, server_hostname=name)

        return self.do_open(Connection, req, context=ctx)


def _text(text: str) -> str:
    # JSON carries any character safely; only keep the size sane.
    return str(text)[:MAX_TEXT]


def _results(raw: bytes) -> Optional[list]:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    results = data.get("results") if isinstance(data, dict) else None
    return results if isinstance(results, list) else None


def _message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:200]
    if isinstance(data, dict):
        return str(data.get("status") or data.get("error") or "")
    return ""


__all__ = ["IcingaClient"]
