"""Every Socket.IO event name, in one place: this module is the protocol's vocabulary."""

CALL_NAMESPACE = "/call"
STAFF_NAMESPACE = "/staff"

# /call, client -> server (each answered by an acknowledgement)
CHAT = "chat"
CURSOR = "cursor"
MUTE = "mute"
CAMERA_FACING = "camera_facing"
CAMERA_SWITCH_REQUEST = "camera_switch_request"
CAMERA_SWITCH_ANSWER = "camera_switch_answer"
END_CALL = "end_call"
RTC_OFFER = "rtc_offer"
SCREENSHOT = "screenshot"
RECORD_START = "record_start"
RECORD_STOP = "record_stop"

# /call, server -> client
PRESENCE = "presence"
CHAT_HISTORY = "chat_history"
# CHAT and CURSOR are also relayed under their own names
CAMERA_SWITCH_REQUESTED = "camera_switch_requested"
CAMERA_SWITCH_RESULT = "camera_switch_result"
RECORDING = "recording"
CAPTURE = "capture"
CALL_ENDED = "call_ended"

# /staff, client -> server
WATCH = "watch"
UNWATCH = "unwatch"

# /staff, server -> client
INVITE_UPDATED = "invite_updated"
LINK_OPENED = "link_opened"
MEDIA_ADDED = "media_added"
