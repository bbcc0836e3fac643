#!/usr/bin/python3
"""The gst-rtsp-server peer of `rtsp_vs_gst`: serves one MPEG-TS file as RTSP VOD, MP2T over RTP
(payload type 33), one pipeline per session (shared=false), on a loopback port.

    /usr/bin/python3 gst_rtsp_vod.py FILE PORT [MOUNT]   -> rtsp://127.0.0.1:PORT/MOUNT

Needs Debian's python3-gi and gir1.2-gst-rtsp-server-1.0. Prints "READY" once listening.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    path, port = sys.argv[1], sys.argv[2]
    mount = sys.argv[3] if len(sys.argv) > 3 else "bench"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( filesrc location={path} ! tsparse set-timestamps=true "
        f"! rtpmp2tpay name=pay0 pt=33 )"
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory("/" + mount, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("READY", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
