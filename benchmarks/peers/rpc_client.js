// ocpp-rpc 2.2.1 stations making sequential Heartbeat calls (benchmark peer).
'use strict';
const { RPCClient } = require('ocpp-rpc');

function arg(name, dflt) {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : dflt;
}

async function main() {
    const url = process.argv[2];
    const stations = Number(arg('--stations', 1));
    const calls = Number(arg('--calls', 1000));
    const idle = Number(arg('--idle', 0));
    const strict = process.argv.includes('--strict');
    const clients = [];
    for (let i = 0; i < stations; i++) {
        const cli = new RPCClient({ endpoint: url, identity: `CP${i}`, protocols: ['ocpp1.6'], strictMode: strict, reconnect: false, pingIntervalMs: 0 });
        await cli.connect();
        clients.push(cli);
    }
    if (idle) {
        process.stdout.write('{"connected": true}\n');
        await new Promise((r) => setTimeout(r, idle * 1000));
    } else {
        const latencies = [];
        const start = process.hrtime.bigint();
        await Promise.all(clients.map(async (cli) => {
            for (let j = 0; j < calls; j++) {
                const t0 = process.hrtime.bigint();
                await cli.call('Heartbeat', {});
                latencies.push(Number(process.hrtime.bigint() - t0) / 1e9);
            }
        }));
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        latencies.sort((a, b) => a - b);
        const n = latencies.length;
        process.stdout.write(JSON.stringify({
            calls: n, seconds, calls_per_s: n / seconds,
            p50_ms: 1000 * latencies[Math.floor(n / 2)], p99_ms: 1000 * latencies[Math.min(n - 1, Math.floor(n * 0.99))],
        }) + '\n');
    }
    await Promise.all(clients.map((c) => c.close({ force: true })));
    process.exit(0);
}
main();
