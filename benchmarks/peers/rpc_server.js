// ocpp-rpc 2.2.1 CSMS answering Heartbeat (benchmark peer).
'use strict';
const { RPCServer } = require('ocpp-rpc');

async function main() {
    const server = new RPCServer({ protocols: ['ocpp1.6'], strictMode: process.argv.includes('--strict'), pingIntervalMs: 0 });
    server.on('client', (client) => {
        client.handle('Heartbeat', () => ({ currentTime: '2024-01-01T00:00:00Z' }));
    });
    const http = await server.listen(0, '127.0.0.1');
    process.stdout.write(JSON.stringify({ port: http.address().port, pid: process.pid }) + '\n');
}
main();
