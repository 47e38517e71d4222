"""The openBIS client distrusts openBIS: answers of odd shapes, sizes and speeds, through httpx.MockTransport.

No process and no network: each test hands the client a transport that
answers the way a broken or hostile openBIS would.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time

import httpx
import pytest

from openbis_hub.errors import InvalidToken, OpenBISUnreachable, UnexpectedAnswer
from openbis_hub.openbis import AS_V3_PATH, OpenBISClient, SessionInfo, valid_user_name

URL = "https://openbis.invalid"
TOKEN = "alice-261123000000000x0123456789ABCDEF0123456789ABCDEF"
SESSION = {"userName": "alice", "personalAccessTokenSession": False, "personalAccessTokenSessionName": None}


def client_for(handler, **kwargs) -> OpenBISClient:
    """A client whose openBIS is ``handler`` (a function or coroutine from request to response)."""
    return OpenBISClient(URL, transport=httpx.MockTransport(handler), **kwargs)


def answering(body):
    """A handler that answers every request with ``body`` as JSON."""
    return lambda request: httpx.Response(200, json=body)


class Chunks(httpx.AsyncByteStream):
    """An answer body of ``count`` chunks, ``pause`` seconds apart; ``sent`` counts what was read."""

    def __init__(self, chunk: bytes, count: int, pause: float = 0.0, last: bytes = b""):
        self.chunk, self.count, self.pause, self.last = chunk, count, pause, last
        self.sent = 0

    async def __aiter__(self):
        for _ in range(self.count):
            if self.pause:
                await asyncio.sleep(self.pause)
            self.sent += 1
            yield self.chunk
        yield self.last


# --- JSON-RPC errors of any shape -------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        "boom",
        ["boom", 1],
        42,
        True,
        {"message": "boom", "data": "not a dict"},
        {"message": ["not", "a", "string"], "data": [1, 2]},
        {"message": "boom", "data": {"exceptionTypeName": {"not": "a string"}}},
        {"message": "boom", "data": {"exceptionTypeName": "ch.x.Failure: boom\nat line 1"}},
    ],
    ids=["string", "list", "number", "bool", "data-string", "message-list", "type-dict", "type-with-text"],
)
async def test_an_error_of_any_shape_is_an_unexpected_answer(error):
    """A JSON-RPC ``error`` that is not openBIS's dict is a 502 with our own message, never an AttributeError."""
    async with client_for(answering({"jsonrpc": "2.0", "id": "1", "error": error})) as client:
        with pytest.raises(UnexpectedAnswer) as raised:
            await client.session_information(TOKEN)
    assert raised.value.status == 502
    assert raised.value.message.startswith("openBIS ")
    assert "boom" not in raised.value.message


async def test_an_exception_type_that_is_a_class_name_is_named():
    """openBIS's own error form still works: the simple class name is all that is repeated."""
    exception_type = "ch.systemsx.cisd.common.exceptions.UserFailureException"
    error = {"message": "boom", "data": {"exceptionTypeName": exception_type}}
    async with client_for(answering({"error": error})) as client:
        with pytest.raises(UnexpectedAnswer) as raised:
            await client.server_information(TOKEN)
    assert raised.value.message == "openBIS refused the request (UserFailureException)."


async def test_an_error_string_that_says_the_token_is_invalid_is_an_invalid_token():
    """A bare string error is still read: one that says the token is invalid is a 401."""
    async with client_for(answering({"error": f"Session token '{TOKEN}' is invalid"})) as client:
        with pytest.raises(InvalidToken) as raised:
            await client.session_information(TOKEN)
    assert raised.value.status == 401


@pytest.mark.parametrize(
    "token, error",
    [
        (TOKEN, f"Session token '{TOKEN}' is invalid"),
        (TOKEN, {"message": f"user of {TOKEN} not allowed", "data": {"exceptionTypeName": "ch.x.UserFailure"}}),
        (TOKEN, {"message": "no", "data": {"exceptionTypeName": f"ch.x.Failure: {TOKEN}"}}),
        # a token that looks like a Java class name, echoed as the exception type
        ("sessionToken0123456789", {"message": "no", "data": {"exceptionTypeName": "ch.x.sessionToken0123456789"}}),
        ("sessionToken0123456789", ["sessionToken0123456789"]),
    ],
    ids=["string", "message", "type-with-text", "type-is-token", "list"],
)
async def test_the_token_is_never_in_a_raised_message(token, error):
    """openBIS echoes tokens in its error texts; none reaches the message, str() or repr() of what is raised."""
    async with client_for(answering({"error": error})) as client:
        with pytest.raises((InvalidToken, UnexpectedAnswer)) as raised:
            await client.session_information(token)
    assert token not in raised.value.message
    assert token not in str(raised.value)
    assert token not in repr(raised.value)


# --- the user name openBIS reports ------------------------------------------


BAD_USER_NAMES = {
    "empty": "",
    "number": 42,
    "null": None,
    "list": ["alice"],
    "too-long": "a" * 256,
    "slash": "alice/../bob",
    "backslash": "alice\\bob",
    "dot": ".",
    "dot-dot": "..",
    "contains-dot-dot": "alice..bob",
    "nul": "ali\x00ce",
    "newline": "alice\nbob",
    "del": "alice\x7f",
    "zero-width": "alice\u200b",
    "leading-space": " alice",
    "trailing-space": "alice ",
    "leading-tab": "\talice",
}


@pytest.mark.parametrize("name", BAD_USER_NAMES.values(), ids=BAD_USER_NAMES.keys())
async def test_a_user_name_that_cannot_be_used_is_refused(name):
    """openBIS decides who a token belongs to, but not a name that is unsafe as a hub user or a directory."""
    assert not valid_user_name(name)
    async with client_for(answering({"result": {**SESSION, "userName": name}})) as client:
        with pytest.raises(UnexpectedAnswer) as raised:
            await client.session_information(TOKEN)
    assert raised.value.status == 502
    assert raised.value.message.startswith("openBIS reported a user name that cannot be used")
    assert raised.value.message.isprintable()  # no control character is repeated...
    if not (isinstance(name, str) and name.isprintable()):  # ...nor such a name in any other form
        assert raised.value.message == "openBIS reported a user name that cannot be used."


@pytest.mark.parametrize("name", ["alice", "Jane.Doe", "müller", "jane doe", "a" * 255, "a.b.c"])
async def test_a_usable_user_name_is_taken_as_it_is(name):
    """Ordinary names, including dots, spaces inside and 255 characters, pass unchanged."""
    assert valid_user_name(name)
    async with client_for(answering({"result": {**SESSION, "userName": name}})) as client:
        assert await client.session_information(TOKEN) == SessionInfo(name, False, None)


async def test_only_json_true_marks_a_personal_access_token_session():
    """``"false"`` is not true, and a session name that is not a string is no session name."""
    weird = {**SESSION, "personalAccessTokenSession": "false", "personalAccessTokenSessionName": {"x": 1}}
    async with client_for(answering({"result": weird})) as client:
        assert await client.session_information(TOKEN) == SessionInfo("alice", False, None)


# --- size and time of an answer ---------------------------------------------


async def test_a_huge_answer_with_content_length_is_refused_before_reading():
    """A Content-Length over the limit is refused without reading a single chunk of the body."""
    body = Chunks(b" " * 1024, 10)
    answer = httpx.Response(200, headers={"Content-Length": str(10**12)}, stream=body)
    async with client_for(lambda request: answer, max_answer_bytes=4096) as client:
        with pytest.raises(UnexpectedAnswer, match="more than 4096 bytes") as raised:
            await client.session_information(TOKEN)
    assert raised.value.status == 502
    assert body.sent == 0


async def test_a_huge_answer_without_content_length_is_refused_while_reading():
    """Without a Content-Length the body is counted as it comes, and dropped once past the limit."""
    body = Chunks(b" " * 1024, 1000, last=b'{"result": true}')  # about 1 MB
    async with client_for(lambda request: httpx.Response(200, stream=body), max_answer_bytes=4096) as client:
        with pytest.raises(UnexpectedAnswer, match="more than 4096 bytes"):
            await client.is_session_active(TOKEN)
    assert body.sent <= 5


async def test_an_answer_of_exactly_the_limit_is_read():
    """The limit is inclusive: an answer of ``max_answer_bytes`` bytes is fine."""
    content = json.dumps({"result": SESSION}).encode()
    async with client_for(lambda request: httpx.Response(200, content=content), max_answer_bytes=len(content)) as c:
        assert (await c.session_information(TOKEN)).user_id == "alice"


async def test_a_dripping_answer_hits_the_whole_call_deadline():
    """Each chunk comes in time, the whole answer does not: unreachable after about ``timeout`` seconds."""
    body = Chunks(b" ", 30, pause=0.1, last=json.dumps({"result": SESSION}).encode())  # 3 s in all
    async with client_for(lambda request: httpx.Response(200, stream=body), timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(OpenBISUnreachable, match=r"openBIS is unreachable: .* did not answer within 0.5 s\."):
            await client.session_information(TOKEN)
        assert time.monotonic() - started < 1.0
    assert body.sent < 10


async def test_a_deeply_nested_answer_is_not_json_to_us():
    """JSON nested deeper than Python's recursion limit is an UnexpectedAnswer, not a RecursionError."""
    deep = b"[" * 100_000 + b"]" * 100_000
    async with client_for(lambda request: httpx.Response(200, content=deep)) as client:
        with pytest.raises(UnexpectedAnswer, match="not JSON"):
            await client.session_information(TOKEN)


@pytest.mark.parametrize(
    "ask, result",
    [
        (lambda c: c.is_session_active(TOKEN), "false"),
        (lambda c: c.login("alice", "alice-pw"), "a token\nwith a newline"),
        (lambda c: c.create_personal_access_token(TOKEN, "s", 60), [{"permId": "$pat-alice 1"}]),
    ],
    ids=["isSessionActive-string", "login-newline", "pat-space"],
)
async def test_results_of_the_wrong_form_are_refused(ask, result):
    """A result that is not what the API documents is refused, not passed on (``"false"`` is not false)."""
    async with client_for(answering({"result": result})) as client:
        with pytest.raises(UnexpectedAnswer):
            await ask(client)


# --- the token cache and coalesced token checks -----------------------------


async def test_refused_tokens_are_remembered_briefly_and_an_unreachable_openbis_never():
    """A refused token is asked about again only after ``failure_ttl``; after a failed connection, at once."""
    requests = []
    unreachable_token = TOKEN.replace("alice", "bob")
    invalid = "ch.systemsx.cisd.common.exceptions.InvalidSessionException"

    def openbis(request):
        requests.append(request)
        if unreachable_token.encode() in request.content:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"error": {"message": "no", "data": {"exceptionTypeName": invalid}}})

    async with client_for(openbis, failure_ttl=0.1) as client:
        for _ in range(3):
            with pytest.raises(InvalidToken):
                await client.session_information(TOKEN)
        assert len(requests) == 1
        await asyncio.sleep(0.15)
        with pytest.raises(InvalidToken):
            await client.session_information(TOKEN)
        assert len(requests) == 2
        for _ in range(2):
            with pytest.raises(OpenBISUnreachable, match=r"unreachable at .* \(ConnectError\)"):
                await client.session_information(unreachable_token)
        assert len(requests) == 4


class HeldOpenBIS:
    """An openBIS that counts requests and answers only once ``release`` is set."""

    def __init__(self, body):
        self.body = body
        self.requests = 0
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == AS_V3_PATH
        self.requests += 1
        self.asked.set()
        await self.release.wait()
        return httpx.Response(200, json=self.body)


@pytest.mark.parametrize("cancelled", [0, 1, 2], ids=["first", "second", "third"])
async def test_cancelling_one_coalesced_caller_leaves_the_others(cancelled):
    """Three callers share one request; cancelling any one of them, even the first, cancels only that one."""
    openbis = HeldOpenBIS({"result": SESSION})
    async with client_for(openbis) as client:
        callers = [asyncio.create_task(client.session_information(TOKEN)) for _ in range(3)]
        await asyncio.wait_for(openbis.asked.wait(), 1)
        callers[cancelled].cancel()
        await asyncio.sleep(0)
        openbis.release.set()
        results = await asyncio.gather(*callers, return_exceptions=True)
        assert isinstance(results.pop(cancelled), asyncio.CancelledError)
        assert results == [SessionInfo("alice", False, None)] * 2
        assert await client.session_information(TOKEN) == SessionInfo("alice", False, None)  # cached
        assert openbis.requests == 1


async def test_a_shared_check_whose_callers_all_left_leaves_no_unretrieved_exception():
    """If every caller is cancelled and the shared request then fails, asyncio has nothing to complain about."""
    loop = asyncio.get_running_loop()
    complaints = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda loop, context: complaints.append(context))
    try:
        openbis = HeldOpenBIS({"error": {"message": "boom", "data": {"exceptionTypeName": "ch.x.Failure"}}})
        async with client_for(openbis) as client:
            callers = [asyncio.create_task(client.session_information(TOKEN)) for _ in range(3)]
            await asyncio.wait_for(openbis.asked.wait(), 1)
            for caller in callers:
                caller.cancel()
            await asyncio.gather(*callers, return_exceptions=True)
            (shared,) = client._tasks
            openbis.release.set()
            await asyncio.wait([shared])
            assert not shared.cancelled() and not client._tasks  # failed, and nobody looked
            del shared, callers, caller  # nothing of ours may keep the task alive past gc.collect()
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert complaints == []
