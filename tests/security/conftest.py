"""The Kakao channel fixtures (a channel with a known token, a user, a callback server, slow turns), shared
with the channel tests so the log tests drive the very same callback path."""

from tests.channels.test_kakao_webhook import (  # noqa: F401 - fixtures, used by name
    callback_server,
    kakao_channel,
    kakao_user,
    slow_turns,
)
