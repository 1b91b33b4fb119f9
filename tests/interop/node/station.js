// An OCPP station built with ocpp-rpc (Node), for interop tests.
// Usage: node station.js URL IDENTITY PROTOCOL
// Runs a scripted session against the CSMS at URL, answers the CSMS's
// GetConfiguration (1.6) or GetVariables (2.0.1) call, prints one JSON line per
// event and exits 0 when the session completed (1 otherwise).
'use strict';
const { RPCClient } = require('ocpp-rpc');

const [url, identity, protocol] = process.argv.slice(2);
const say = (event) => process.stdout.write(JSON.stringify(event) + '\n');
const now = () => new Date().toISOString();

async function main() {
    const cli = new RPCClient({
        endpoint: url,
        identity,
        protocols: [protocol],
        strictMode: true,
        reconnect: false,
    });
    let answered;
    const asked = new Promise((resolve) => { answered = resolve; });
    cli.handle('GetConfiguration', ({ params }) => {
        say({ got: 'GetConfiguration', params });
        answered();
        return { configurationKey: params.key.map((key) => ({ key, readonly: false, value: '300' })) };
    });
    cli.handle('GetVariables', ({ params }) => {
        say({ got: 'GetVariables', params });
        answered();
        return {
            getVariableResult: params.getVariableData.map((d) => ({
                attributeStatus: 'Accepted', attributeValue: '300', component: d.component, variable: d.variable,
            })),
        };
    });
    await cli.connect();
    say({ connected: cli.protocol });
    let boot;
    if (protocol === 'ocpp1.6') {
        boot = await cli.call('BootNotification', { chargePointVendor: 'Node', chargePointModel: 'ocpp-rpc' });
        say({ answer: 'BootNotification', result: boot });
        say({ answer: 'Heartbeat', result: await cli.call('Heartbeat', {}) });
        say({ answer: 'StatusNotification', result: await cli.call('StatusNotification', { connectorId: 1, errorCode: 'NoError', status: 'Available' }) });
        try {
            await cli.call('Authorize', { idTag: 'UNKNOWN-TAG' });
        } catch (err) {
            say({ answer: 'Authorize', error: err.rpcErrorCode, message: err.rpcErrorMessage });
        }
    } else {
        boot = await cli.call('BootNotification', { chargingStation: { vendorName: 'Node', model: 'ocpp-rpc' }, reason: 'PowerUp' });
        say({ answer: 'BootNotification', result: boot });
        say({ answer: 'Heartbeat', result: await cli.call('Heartbeat', {}) });
        say({ answer: 'StatusNotification', result: await cli.call('StatusNotification', { timestamp: now(), connectorStatus: 'Available', evseId: 1, connectorId: 1 }) });
    }
    await Promise.race([asked, new Promise((_, reject) => setTimeout(() => reject(new Error('no call from the CSMS')), 10000))]);
    await cli.close({ code: 1000, reason: 'done' });
    say({ closed: true });
}

main().then(() => process.exit(0), (err) => { say({ error: String(err && err.stack || err) }); process.exit(1); });
