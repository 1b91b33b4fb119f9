"""One OCPP-J connection on Trio: its state, outbound calls, inbound dispatch, pings."""
