// Stand-in for voltlog-io (ocpp-ws-io 2.3.2 requires it at load time; the npm
// registry does not serve it). ocpp-ws-io builds a logger only when its
// `logging` option is not false; the benchmark peers pass logging: false, so
// none of this runs while they measure. Anything that does build one fails
// loudly instead of logging nowhere.
'use strict';

function unavailable() {
    throw new Error('voltlog-io is a stub here (tests/interop/node overrides it): '
        + 'create ocpp-ws-io clients and servers with logging: false');
}

module.exports = { createLogger: unavailable, consoleTransport: unavailable, prettyTransport: unavailable };
