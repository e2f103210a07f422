"""The transport between an API process and its workers, over real unix sockets in one process.

The dispatcher runs on an event loop; each simulated worker is a real ``WorkerChannel`` whose blocking
calls run in a thread, so both ends speak the wire protocol exactly as the processes do.
"""

import asyncio
import os
import pickle
import socket
import tempfile

import pytest

from litserve.transport import dispatcher as dispatcher_module
from litserve.transport import messages
from litserve.transport.dispatcher import Dispatcher
from litserve.transport.worker_channel import WorkerChannel


def test_frame_reader_reassembles_messages_split_anywhere():
    sent = [("small", 1), ("big", b"x" * 200_000), (messages.RESPONSES, [(1, 200, None, b"{}", True)])]
    stream = b"".join(part for message in sent for part in messages.frame(message))
    for step in (1, 7, 4096, len(stream)):
        reader = messages.FrameReader()
        received = []
        for start in range(0, len(stream), step):
            received.extend(reader.feed(stream[start : start + step]))
        assert received == sent


def test_a_large_payload_is_written_after_its_header_without_a_copy():
    payload = b"y" * (1 << 20)
    parts = messages.frame(("body", payload))
    assert len(parts) == 2
    assert pickle.loads(parts[1]) == ("body", payload)


@pytest.fixture
def endpoints():
    ends = messages.Endpoints(tempfile.mkdtemp(prefix="litserve-test-"))
    yield ends
    ends.cleanup()


def _worker(endpoints, worker_id=0, incarnation=0):
    channel = WorkerChannel([endpoints.api_inbox(0)], parent_sentinel=None)
    channel.open(worker_id, incarnation)
    return channel


async def _receive(channel, count):
    """Block (in a thread) until ``count`` requests are queued in the worker; returns them."""
    loop = asyncio.get_running_loop()
    items = []
    for _ in range(50):
        items.extend(channel.take(count - len(items)))
        if len(items) == count:
            return items
        await loop.run_in_executor(None, channel.wait, 0.1)
    raise AssertionError(f"the worker received {len(items)} of {count} requests")


async def _until(condition):
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in 2 s")


def _run(endpoints, scenario, route_workers=([0],)):
    async def main():
        (listener,) = endpoints.listen(1)
        dispatcher = Dispatcher(0, [list(workers) for workers in route_workers])
        await dispatcher.start(listener)
        try:
            await scenario(dispatcher)
        finally:
            dispatcher.stop()

    asyncio.run(main())


def test_requests_sent_before_the_worker_connects_reach_it_once_it_does(endpoints):
    async def scenario(dispatcher):
        early = [dispatcher.submit(0, "application/json", b'{"i": %d}' % i, None, False) for i in range(3)]
        await asyncio.sleep(0.05)
        assert not dispatcher.all_workers_ready()
        channel = _worker(endpoints)
        items = await _receive(channel, 3)
        assert [item.body for item in items] == [b'{"i": 0}', b'{"i": 1}', b'{"i": 2}']
        assert dispatcher.all_workers_ready()
        channel.send([(item, 200, None, item.body, True) for item in items])
        replies = await asyncio.wait_for(asyncio.gather(*(p.future for p in early)), 2)
        assert [body for _, _, body, _ in replies] == [b'{"i": 0}', b'{"i": 1}', b'{"i": 2}']
        assert dispatcher.in_flight == 0
        channel.close()

    _run(endpoints, scenario)


def test_a_request_cancelled_while_waiting_for_the_worker_is_never_run(endpoints):
    async def scenario(dispatcher):
        dropped = dispatcher.submit(0, "application/json", b"1", None, False)
        kept = dispatcher.submit(0, "application/json", b"2", None, False)
        await asyncio.sleep(0.01)
        assert dispatcher.abandon(dropped)
        channel = _worker(endpoints)
        (item,) = await _receive(channel, 1)
        assert item.body == b"2"
        channel.send([(item, 200, None, b"ok", True)])
        assert (await asyncio.wait_for(kept.future, 2))[2] == b"ok"
        channel.close()

    _run(endpoints, scenario)


def test_a_late_exit_notice_fails_only_what_the_dead_worker_held(endpoints):
    async def scenario(dispatcher):
        old = _worker(endpoints, worker_id=0, incarnation=0)
        other = _worker(endpoints, worker_id=1, incarnation=0)
        await _until(dispatcher.all_workers_ready)
        lost = dispatcher.submit(0, "application/json", b"old", None, False)
        elsewhere = dispatcher.submit(0, "application/json", b"other", None, False)
        assert (lost.worker_id, elsewhere.worker_id) == (0, 1)
        await _receive(old, 1)
        (other_item,) = await _receive(other, 1)
        old.close()  # died holding a request
        await _until(lambda: not dispatcher.all_workers_ready())
        new = _worker(endpoints, worker_id=0, incarnation=1)
        await _until(dispatcher.all_workers_ready)
        kept = dispatcher.submit(0, "application/json", b"new", None, False)
        assert kept.worker_id == 0
        (item,) = await _receive(new, 1)
        # The supervisor's notice about incarnation 0 arrives after incarnation 1 took a request.
        messages.send_to_each([endpoints.api_inbox(0)], (messages.WORKER_EXITED, 0, 0, "was killed by SIGKILL"))
        status, _, body, _ = await asyncio.wait_for(lost.future, 2)
        assert status == 503 and b"SIGKILL" in body
        assert not kept.future.done() and not elsewhere.future.done()
        assert dispatcher.in_flight_by_route() == [2]
        new.send([(item, 200, None, b"fine", True)])
        other.send([(other_item, 200, None, b"also fine", True)])
        assert (await asyncio.wait_for(kept.future, 2))[2] == b"fine"
        assert (await asyncio.wait_for(elsewhere.future, 2))[2] == b"also fine"
        new.close()
        other.close()

    _run(endpoints, scenario, route_workers=[[0, 1]])


def test_a_worker_gone_without_notice_does_not_leave_its_requests_hanging(endpoints, monkeypatch):
    monkeypatch.setattr(dispatcher_module, "_EXIT_NOTICE_WAIT_S", 0.1)

    async def scenario(dispatcher):
        channel = _worker(endpoints)
        held = dispatcher.submit(0, "application/json", b"1", None, False)
        await _receive(channel, 1)
        channel.close()
        status, _, body, _ = await asyncio.wait_for(held.future, 2)
        assert status == 503 and b"connection closed" in body
        assert not dispatcher.all_workers_ready()

    _run(endpoints, scenario)


def test_a_worker_keeps_its_connection_whatever_default_timeout_the_model_sets(endpoints):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(0.5)  # as some libraries do at import
    try:

        async def scenario(dispatcher):
            channel = _worker(endpoints)
            await _until(dispatcher.all_workers_ready)
            channel.drain()  # nothing waiting: must return at once and keep the connection
            pending = dispatcher.submit(0, "application/json", b"1", None, False)
            (item,) = await _receive(channel, 1)
            channel.send([(item, 200, None, b"ok", True)])
            assert (await asyncio.wait_for(pending.future, 2))[2] == b"ok"
            channel.close()

        _run(endpoints, scenario)
    finally:
        socket.setdefaulttimeout(previous)


def test_a_message_that_cannot_be_decoded_is_skipped_and_the_next_one_read():
    good = messages.frame(("ok", 1))[0]
    broken = len(b"not a pickle at all").to_bytes(messages.HEADER_SIZE, "little") + b"not a pickle at all"
    assert messages.FrameReader().feed(broken + good) == [("ok", 1)]


def test_a_worker_drops_an_api_process_that_went_away(endpoints):
    async def scenario(dispatcher):
        channel = _worker(endpoints)
        pending = dispatcher.submit(0, "application/json", b"1", None, False)
        (item,) = await _receive(channel, 1)
        dispatcher.stop()
        await asyncio.sleep(0.05)
        channel.drain()
        channel.send([(item, 200, None, b"late", True)])  # nobody listens: dropped, no error
        assert not pending.future.done()
        channel.close()

    _run(endpoints, scenario)
    assert os.path.isdir(endpoints.base_dir)
