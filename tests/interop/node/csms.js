// A CSMS built with ocpp-rpc (Node), for interop tests of `ocpp-trio station`.
// Usage: node csms.js PROTOCOL
// Prints {"port": N} once listening on 127.0.0.1 (a free port), then one JSON
// line per event.  It answers what a station sends; once the first station
// has booted it calls it back: read and change its configuration, trigger a
// StatusNotification, start a transaction remotely and stop it again.  When
// that station disconnects it prints {"closed": ...} and exits 0 if the
// whole exchange completed, 1 otherwise (or after 20 s without completing).
'use strict';
const { RPCServer } = require('ocpp-rpc');

const protocol = process.argv[2];
const say = (event) => process.stdout.write(JSON.stringify(event) + '\n');
const now = () => new Date().toISOString();

function waiter() {
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    return { promise, resolve };
}

async function callBack16(client, started, stopped) {
    say({ answer: 'GetConfiguration', result: await client.call('GetConfiguration', { key: ['HeartbeatInterval', 'NoSuchKey'] }) });
    say({ answer: 'ChangeConfiguration', result: await client.call('ChangeConfiguration', { key: 'HeartbeatInterval', value: '1' }) });
    say({ answer: 'TriggerMessage', result: await client.call('TriggerMessage', { requestedMessage: 'StatusNotification', connectorId: 1 }) });
    say({ answer: 'RemoteStartTransaction', result: await client.call('RemoteStartTransaction', { idTag: 'REMOTE-1', connectorId: 1 }) });
    const transactionId = await started.promise;
    say({ answer: 'RemoteStopTransaction', result: await client.call('RemoteStopTransaction', { transactionId }) });
    await stopped.promise;
}

async function callBack2x(client, started, stopped) {
    const data = [{ component: { name: 'OCPPCommCtrlr' }, variable: { name: 'HeartbeatInterval' } },
        { component: { name: 'NoSuchCtrlr' }, variable: { name: 'X' } }];
    say({ answer: 'GetVariables', result: await client.call('GetVariables', { getVariableData: data }) });
    say({ answer: 'SetVariables', result: await client.call('SetVariables', {
        setVariableData: [{ component: { name: 'OCPPCommCtrlr' }, variable: { name: 'HeartbeatInterval' }, attributeValue: '1' }],
    }) });
    say({ answer: 'TriggerMessage', result: await client.call('TriggerMessage', { requestedMessage: 'StatusNotification', evse: { id: 1, connectorId: 1 } }) });
    say({ answer: 'RequestStartTransaction', result: await client.call('RequestStartTransaction', {
        idToken: { idToken: 'REMOTE-1', type: 'Central' }, remoteStartId: 7,
    }) });
    const transactionId = await started.promise;
    say({ answer: 'RequestStopTransaction', result: await client.call('RequestStopTransaction', { transactionId }) });
    await stopped.promise;
}

async function main() {
    const server = new RPCServer({ protocols: [protocol], strictMode: true });
    let completed = false;
    server.on('client', (client) => {
        say({ connected: client.identity, protocol: client.protocol });
        const booted = waiter();
        const started = waiter();
        const stopped = waiter();
        const got = (method, result) => ({ params }) => {
            say({ got: method, params });
            return typeof result === 'function' ? result(params) : result;
        };
        client.handle('BootNotification', got('BootNotification', () => {
            setImmediate(booted.resolve);
            return { status: 'Accepted', currentTime: now(), interval: 60 };
        }));
        client.handle('Heartbeat', got('Heartbeat', () => ({ currentTime: now() })));
        client.handle('StatusNotification', got('StatusNotification', {}));
        client.handle('MeterValues', got('MeterValues', {}));
        client.handle('DataTransfer', got('DataTransfer', { status: 'UnknownVendorId' }));
        if (protocol === 'ocpp1.6') {
            client.handle('Authorize', got('Authorize', { idTagInfo: { status: 'Accepted' } }));
            client.handle('StartTransaction', got('StartTransaction', () => {
                setImmediate(() => started.resolve(42));
                return { transactionId: 42, idTagInfo: { status: 'Accepted' } };
            }));
            client.handle('StopTransaction', got('StopTransaction', () => {
                setImmediate(stopped.resolve);
                return { idTagInfo: { status: 'Accepted' } };
            }));
        } else {
            client.handle('Authorize', got('Authorize', { idTokenInfo: { status: 'Accepted' } }));
            client.handle('NotifyReport', got('NotifyReport', {}));
            client.handle('TransactionEvent', got('TransactionEvent', (params) => {
                if (params.eventType === 'Started') setImmediate(() => started.resolve(params.transactionInfo.transactionId));
                if (params.eventType === 'Ended') setImmediate(stopped.resolve);
                return {};
            }));
        }
        client.on('close', ({ code, reason }) => {
            say({ closed: code, reason: String(reason), completed });
            server.close({ force: true }).then(() => process.exit(completed ? 0 : 1));
        });
        booted.promise
            .then(() => (protocol === 'ocpp1.6' ? callBack16 : callBack2x)(client, started, stopped))
            .then(() => { completed = true; say({ done: true }); })
            .catch((err) => say({ error: String(err && err.stack || err) }));
    });
    const http = await server.listen(0, '127.0.0.1');
    say({ port: http.address().port });
    setTimeout(() => { say({ error: 'timed out' }); process.exit(1); }, 20000).unref();
}

main().catch((err) => { say({ error: String(err && err.stack || err) }); process.exit(1); });
