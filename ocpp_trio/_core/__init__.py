"""The sans-IO OCPP-J core: frames, errors, per-connection RPC state, validation.

Nothing in this package performs I/O or imports trio: text goes in, events
and text come out.  The Trio layer (``ocpp_trio._rpc``) owns sockets and
time.
"""
