#!/usr/bin/env python3
"""A capturing SMTP server for Gazette's tests, built on aiosmtpd (a real, third-party
SMTP implementation). Every accepted message is written to --dir as NNNNNN.eml with the
envelope beside it in NNNNNN.json. Prints "READY <port>" once listening and runs until
its standard input closes (so it dies with the test that started it).

Options: --starttls CA_OUT  require STARTTLS with a certificate for 127.0.0.1 signed by a
fresh test CA, whose PEM is written to CA_OUT; --auth USER:PASSWORD  require AUTH;
--port N  listen on N (a relay coming back where it was); --reject-rcpt "CODE TEXT"
answer RCPT TO with that reply (e.g. a relay-wide "554 5.7.1 Relay access denied"),
--reject-only SUBSTR  only for recipients containing SUBSTR; --reject-first  only each
recipient's first try (a greylisting relay); --delay SECONDS  wait before answering the
final dot (a slow relay).
"""
import asyncio
import argparse
import json
import os
import socket
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Capture:
    def __init__(self, outdir, reject=None, reject_only=None, delay=0.0, first_only=False):
        self.outdir = outdir
        self.first_only = first_only
        self.tried = set()
        self.count = 0
        self.lock = threading.Lock()
        self.reject = reject
        self.reject_only = reject_only
        self.delay = delay

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject and (self.reject_only is None or self.reject_only in address):
            if not self.first_only or address not in self.tried:
                self.tried.add(address)
                return self.reject
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.count += 1
            n = self.count
        base = os.path.join(self.outdir, f"{n:06d}")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
        }
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 Message accepted for delivery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--starttls", metavar="CA_OUT")
    p.add_argument("--auth", metavar="USER:PASSWORD")
    p.add_argument("--port", type=int)
    p.add_argument("--reject-rcpt")
    p.add_argument("--reject-only")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--reject-first", action="store_true")
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    kwargs = {}
    if args.starttls:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ctx = __import__("ssl").create_default_context(__import__("ssl").Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        ca.cert_pem.write_to_path(args.starttls)
        kwargs.update(tls_context=ctx, require_starttls=True)
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            return AuthResult(success=ok, handled=False)

        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=bool(args.starttls),
        )

    port = args.port or free_port()
    handler = Capture(args.dir, args.reject_rcpt, args.reject_only, args.delay, args.reject_first)
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, data_size_limit=64 * 1024 * 1024, **kwargs
    )
    controller.start()
    print(f"READY {port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
