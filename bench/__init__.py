"""Load testing the product: headless claimant and inspector peers that speak the real protocol.

`bench.clips` pre-encodes the media once (or demuxes a video file), `bench.peers` plays it into
aiortc without encoding and counts what arrives without decoding, `bench.loadtest` drives whole
calls against a running server (`claimcam loadtest`).
"""
