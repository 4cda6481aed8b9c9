"""Server-side WebRTC peers of a call: passthrough forwarding, keyframe requests, frame decoding on demand."""
