"""The Socket.IO hub: call rooms (/call) and live calls-management updates (/staff)."""
