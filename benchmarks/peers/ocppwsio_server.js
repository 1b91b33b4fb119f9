// ocpp-ws-io 2.3.2 CSMS answering Heartbeat and BootNotification (benchmark peer).
// With --tls-cert FILE (key and certificate chain, PEM) it also serves TLS on a
// second port, announced as tls_port.
//
// Options as for rpc_server.js (ocpp-rpc): strictMode from --strict (the
// library's default is off; on, it validates every CALL and CALLRESULT against
// its bundled OCPP 1.6 schemas), no pings (its default is every 30 s), and
// logging: false (its default logs JSON lines to stdout, which would also
// corrupt the announcement line). compression is left at the library's
// default, off: the server declines a permessage-deflate offer.
'use strict';
const fs = require('fs');
const https = require('https');
const { OCPPServer } = require('ocpp-ws-io');

function arg(name, dflt) {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : dflt;
}

async function main() {
    const server = new OCPPServer({
        protocols: ['ocpp1.6'], strictMode: process.argv.includes('--strict'), pingIntervalMs: 0, logging: false,
    });
    server.on('client', (client) => {
        client.handle('Heartbeat', () => ({ currentTime: '2024-01-01T00:00:00Z' }));
        client.handle('BootNotification', () => ({ status: 'Accepted', currentTime: '2024-01-01T00:00:00Z', interval: 300 }));
    });
    const http = await server.listen(0, '127.0.0.1');
    const info = { port: http.address().port, pid: process.pid };
    const certFile = arg('--tls-cert', null);
    if (certFile) {
        const pem = fs.readFileSync(certFile);
        const tls = https.createServer({ cert: pem, key: pem });
        tls.on('upgrade', server.handleUpgrade);
        await new Promise((resolve) => tls.listen(0, '127.0.0.1', resolve));
        info.tls_port = tls.address().port;
    }
    process.stdout.write(JSON.stringify(info) + '\n');
}
main();
