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
    // GetConfiguration.req's key is optional (OCPP 1.6 §6.21): without it, or
    // with an empty list, every configured key is answered; asked keys this
    // station does not have go to unknownKey.
    const configuration = new Map([
        ['HeartbeatInterval', { readonly: false, value: '300' }],
        ['MeterValueSampleInterval', { readonly: false, value: '60' }],
        ['NumberOfConnectors', { readonly: true, value: '1' }],
        ['ConnectionTimeOut', { readonly: false, value: '60' }],
        ['AuthorizeRemoteTxRequests', { readonly: false, value: 'true' }],
    ]);
    cli.handle('GetConfiguration', ({ params }) => {
        say({ got: 'GetConfiguration', params });
        answered();
        const keys = Array.isArray(params.key) && params.key.length > 0 ? params.key : [...configuration.keys()];
        const known = keys.filter((key) => configuration.has(key));
        const unknown = keys.filter((key) => !configuration.has(key));
        const result = { configurationKey: known.map((key) => ({ key, ...configuration.get(key) })) };
        if (unknown.length > 0) {
            result.unknownKey = unknown;
        }
        return result;
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
