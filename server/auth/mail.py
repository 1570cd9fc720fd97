"""The default Mailer: writes each message to the log instead of sending it.

Password-reset codes therefore appear in the log (logger `hubbub.mail`, fields mail_to,
mail_subject, mail_body): right for development and tests, wrong for production. Operators
deliver real mail by implementing `server.auth.ports.Mailer` (SMTP, an email API, ...) and
setting it on the app under `server.auth.wiring.MAILER` before startup; setup_auth then uses it.
"""

from __future__ import annotations

import logging

log = logging.getLogger("hubbub.mail")


class LogMailer:
    async def send(self, to: str, subject: str, body: str) -> None:
        log.info("mail to %s: %s", to, subject,
                 extra={"mail_to": to, "mail_subject": subject, "mail_body": body})
