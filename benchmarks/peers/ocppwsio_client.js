// ocpp-ws-io 2.3.2 stations (benchmark peer): sequential Heartbeat calls ((a), (b)),
// idle connections ((c)), or with --connect N, (d): N stations connect (at most
// --concurrency at a time), each sending one BootNotification, and the rate is reported.
//
// Library defaults except: strictMode from --strict (default off), no reconnecting,
// no pings (default every 30 s) and logging: false (default JSON lines on stdout).
// compression is left unset, so ws offers permessage-deflate (its client default)
// on every connection, as a station built on ocpp-ws-io does; each result line
// carries the extensions the server accepted ("extensions").
// wss:// with --ca uses securityProfile 2 (TLS; no password, so no Basic Auth).
'use strict';
const fs = require('fs');
const { OCPPClient } = require('ocpp-ws-io');

function arg(name, dflt) {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : dflt;
}

function percentiles(latencies) {
    latencies.sort((a, b) => a - b);
    const n = latencies.length;
    return {
        p50_ms: 1000 * latencies[Math.floor(n / 2)],
        p99_ms: 1000 * latencies[Math.min(n - 1, Math.floor(n * 0.99))],
    };
}

function station(url, identity, strict, caFile) {
    const tlsOpts = caFile ? { securityProfile: 2, tls: { ca: fs.readFileSync(caFile) } } : {};
    return new OCPPClient({
        endpoint: url, identity, protocols: ['ocpp1.6'], strictMode: strict,
        reconnect: false, pingIntervalMs: 0, logging: false, ...tlsOpts,
    });
}

// The extensions the server accepted on the first connection ('permessage-deflate' or
// ''). OCPPClient does not expose them (the response it returns from connect() is
// gone by then): read ws's own `extensions` from its socket, a private field.
let extensions = null;
async function connect(cli) {
    await cli.connect();
    if (extensions === null) {
        extensions = cli._ws ? cli._ws.extensions : null;
    }
}

async function connectMany(url, strict) {
    const count = Number(arg('--connect', 0));
    const concurrency = Number(arg('--concurrency', 50));
    const prefix = arg('--prefix', 'D');
    const caFile = arg('--ca', null);
    const clients = [];
    const latencies = [];
    let next = 0;
    async function worker() {
        while (next < count) {
            const i = next++;
            const t0 = process.hrtime.bigint();
            const cli = station(url, `${prefix}${i}`, strict, caFile);
            clients.push(cli);
            await connect(cli);
            await cli.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
            latencies.push(Number(process.hrtime.bigint() - t0) / 1e9);
        }
    }
    const cpu0 = process.cpuUsage();
    const start = process.hrtime.bigint();
    await Promise.all(Array.from({ length: concurrency }, worker));
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const n = latencies.length;
    process.stdout.write(JSON.stringify({
        stations: n, seconds, stations_per_s: n / seconds, ...percentiles(latencies),
        client_cpu_s: (cpu.user + cpu.system) / 1e6, extensions,
    }) + '\n');
    await Promise.all(clients.map((c) => c.close({ force: true })));
}

async function main() {
    const url = process.argv[2];
    const stations = Number(arg('--stations', 1));
    const calls = Number(arg('--calls', 1000));
    const idle = Number(arg('--idle', 0));
    const strict = process.argv.includes('--strict');
    if (Number(arg('--connect', 0))) {
        await connectMany(url, strict);
        process.exit(0);
    }
    const clients = [];
    for (let i = 0; i < stations; i++) {
        const cli = station(url, `CP${i}`, strict, null);
        await connect(cli);
        clients.push(cli);
    }
    if (idle) {
        process.stdout.write(JSON.stringify({ connected: true, extensions }) + '\n');
        await new Promise((r) => setTimeout(r, idle * 1000));
    } else {
        const latencies = [];
        const cpu0 = process.cpuUsage();
        const start = process.hrtime.bigint();
        await Promise.all(clients.map(async (cli) => {
            for (let j = 0; j < calls; j++) {
                const t0 = process.hrtime.bigint();
                await cli.call('Heartbeat', {});
                latencies.push(Number(process.hrtime.bigint() - t0) / 1e9);
            }
        }));
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        const cpu = process.cpuUsage(cpu0);
        const n = latencies.length;
        process.stdout.write(JSON.stringify({
            calls: n, seconds, calls_per_s: n / seconds, ...percentiles(latencies),
            client_cpu_s: (cpu.user + cpu.system) / 1e6, extensions,
        }) + '\n');
    }
    await Promise.all(clients.map((c) => c.close({ force: true })));
    process.exit(0);
}
main();
