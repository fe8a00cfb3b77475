"""An aiosmtpd server that requires SMTP AUTH (PLAIN or LOGIN) with one account.

Usage: smtp_auth_server.py HOST PORT MAILDIR USER PASSWORD
Received mail goes to MAILDIR like `python -m aiosmtpd -c aiosmtpd.handlers.Mailbox`.
AUTH is allowed without TLS here because the test runs on 127.0.0.1 only.
"""
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

host, port, maildir, user, password = sys.argv[1:6]


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == user.encode()
        and auth_data.password == password.encode()
    )
    return AuthResult(success=ok)


controller = Controller(
    Mailbox(maildir),
    hostname=host,
    port=int(port),
    authenticator=authenticator,
    auth_required=True,
    auth_require_tls=False,
)
controller.start()
print("listening", flush=True)
threading.Event().wait()
