"""Domain of claimcam: cases, invites, their event log, media filing, storage and delivery."""
