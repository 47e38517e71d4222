"""The async openBIS client against the stand-in: typed errors, the token cache, TLS."""

from __future__ import annotations

import asyncio
import time

import pytest

from openbis_hub.errors import (
    InvalidToken,
    LoginFailed,
    OpenBISUnreachable,
    PersonalAccessTokenNotValid,
    SessionExpired,
)
from openbis_hub.openbis import OpenBISClient

from hub import free_port


@pytest.fixture(scope="module")
def openbis_standin(own_standin):
    """This module counts the stand-in's calls: it gets one of its own."""
    return own_standin


@pytest.fixture
async def client(openbis_standin):
    async with OpenBISClient(openbis_standin.url, ca_bundle=openbis_standin.ca_file, timeout=2, failure_ttl=0.5) as c:
        yield c


def calls(standin, method="getSessionInformation") -> int:
    return standin.stats()["methods"].get(method, 0)


async def test_login_owner_and_personal_access_token(client):
    token = await client.login("Jane.Doe", "jane-pw")
    info = await client.session_information(token)
    assert (info.user_id, info.personal_access_token) == ("Jane.Doe", False)
    pat = await client.create_personal_access_token(token, "test", 3600)
    assert pat.startswith("$pat-Jane.Doe-")
    pat_info = await client.session_information(pat)
    assert (pat_info.user_id, pat_info.personal_access_token) == ("Jane.Doe", True)
    assert await client.is_session_active(token)
    await client.logout(token)
    assert not await client.is_session_active(token)
    with pytest.raises(InvalidToken):
        await client.session_information(token)


async def test_a_burst_costs_openbis_one_call(client, openbis_standin):
    token = await client.login("alice", "alice-pw")
    openbis_standin.reset_stats()
    infos = await asyncio.gather(*(client.session_information(token) for _ in range(50)))
    assert {i.user_id for i in infos} == {"alice"}
    await client.session_information(token)
    assert calls(openbis_standin) == 1


async def test_refusals_are_typed_and_not_cached_for_long(client, openbis_standin):
    with pytest.raises(LoginFailed):
        await client.login("alice", "wrong")
    forged = "alice-261123000000000x0123456789ABCDEF0123456789ABCDEF"
    openbis_standin.reset_stats()
    for _ in range(3):
        with pytest.raises(InvalidToken) as refused:
            await client.session_information(forged)
    assert forged not in str(refused.value)
    assert calls(openbis_standin) == 1  # remembered briefly...
    time.sleep(0.6)
    with pytest.raises(InvalidToken):
        await client.session_information(forged)
    assert calls(openbis_standin) == 2  # ...then asked again

    token = await client.login("bob", "bob-pw")
    pat = await client.create_personal_access_token(token, "short", 3600)
    openbis_standin.expire("bob", pats=True)
    with pytest.raises(SessionExpired):
        await client.session_information(token, use_cache=False)
    with pytest.raises(PersonalAccessTokenNotValid):
        await client.session_information(pat, use_cache=False)


async def test_unreachable_slow_and_untrusted_openbis(openbis_standin):
    async with OpenBISClient(f"https://127.0.0.1:{free_port()}", timeout=2) as down:
        with pytest.raises(OpenBISUnreachable, match="unreachable"):
            await down.session_information("alice-261123000000000x0123456789ABCDEF0123456789ABCDEF")
    async with OpenBISClient(openbis_standin.url) as untrusted:  # system CAs only
        with pytest.raises(OpenBISUnreachable, match="TLS certificate not trusted"):
            await untrusted.login("alice", "alice-pw")
    async with OpenBISClient(openbis_standin.url, ca_bundle=openbis_standin.ca_file, timeout=1) as client:
        token = await client.login("alice", "alice-pw")
        openbis_standin.set_delay(3)
        try:
            started = time.monotonic()
            with pytest.raises(OpenBISUnreachable, match="did not answer within 1 s"):
                await client.session_information(token)
            assert time.monotonic() - started < 2.5
        finally:
            openbis_standin.set_delay(0)
