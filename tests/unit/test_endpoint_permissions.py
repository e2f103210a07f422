"""The sockets between API processes and workers carry pickles: only the server's own user may reach them."""

from __future__ import annotations

import os
import stat

from litserve.transport.messages import Endpoints


def test_the_socket_directory_is_private_to_the_servers_user():
    endpoints = Endpoints.create()
    try:
        listeners = endpoints.listen(2)
        info = os.stat(endpoints.base_dir)
        assert info.st_uid == os.getuid()
        assert stat.S_IMODE(info.st_mode) == 0o700, "other users could connect to the API processes' sockets"
        for api_server in range(2):
            assert os.path.dirname(endpoints.api_inbox(api_server)) == endpoints.base_dir
        for listener in listeners:
            listener.close()
    finally:
        endpoints.cleanup()
