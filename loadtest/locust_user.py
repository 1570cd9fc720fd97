"""The base of every simulated user: a fresh account signed up on start, known to the shared
world (loadtest/locust_world.py) so that others can follow and message it, and a pause
between tasks drawn from `pauses` (scaled by the settings)."""

from __future__ import annotations

from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser
from locust_accounts import Account, SignupFailed, signup
from locust_settings import SETTINGS
from locust_world import WORLD


class SignedUpUser(FastHttpUser):
    abstract = True
    pauses: tuple[float, float] = (1.0, 5.0)
    prefix = "lt"  # of the usernames

    def wait_time(self) -> float:
        return SETTINGS.pause(*self.pauses)

    def sign_up(self) -> None:
        """A new account (`account`, `me`); a user that cannot sign up stops."""
        try:
            self.account: Account = signup(self.client, self.prefix)
        except SignupFailed:
            raise StopUser() from None
        self.me = self.account.user_id
        WORLD.users.append(self.me)
