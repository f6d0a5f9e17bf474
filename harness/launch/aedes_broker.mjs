// aedes as the harness launches it (harness/launch/aedes.py): node aedes_broker.mjs CONFIG.json
//
// The launcher copies this file into the run's work directory next to a node_modules link to where
// the npm packages aedes and ws are installed: Node resolves this file's imports from its own folder.
//
// CONFIG.json:
//   {"host": "127.0.0.1",
//    "listeners": [{"name": "tcp", "transport": "tcp", "port": 1883},
//                  {"name": "tls", "transport": "tls", "port": 8883, "cert": "server.pem", "key": "server.key"},
//                  {"name": "mtls", "transport": "tls", "port": 8884, "cert": "...", "key": "...", "ca": "ca.pem"},
//                  {"name": "ws", "transport": "ws", "port": 8080}, {"name": "wss", "transport": "wss", ...}],
//    "users": {"name": "password", ...},          // nobody else may connect (anonymous included)
//    "acl": {"name": "topic filter", ...},        // what each user may publish and subscribe to
//    "options": {...}}                            // passed to Aedes.createBroker as they are
//
// A listener with "ca" requires a client certificate signed by it. A SUBSCRIBE outside the user's
// filter gets SUBACK 0x80 (aedes: authorizeSubscribe answers null); a PUBLISH outside it is refused,
// which aedes answers by closing the connection. Prints "aedes VERSION ready" once every listener
// is open; stops on SIGTERM or SIGINT.

import { readFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createNetServer } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import { fileURLToPath } from 'node:url'
import { Aedes } from 'aedes'
import { WebSocketServer, createWebSocketStream } from 'ws'

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const host = config.host || '127.0.0.1'
const users = config.users || {}
const acl = config.acl || {}
const version = JSON.parse(readFileSync(fileURLToPath(new URL('package.json', import.meta.resolve('aedes'))), 'utf8')).version

// Does the MQTT topic filter `filter` match the topic name `topic`? ('#' also matches the parent level)
function matches (filter, topic) {
  const f = filter.split('/')
  const t = topic.split('/')
  if (t[0].startsWith('$') && f[0] !== t[0] && f[0] !== '#') return false
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false
  }
  return f.length === t.length
}

// Is every topic the filter `wanted` matches also matched by the filter `allowed`?
function covers (allowed, wanted) {
  const a = allowed.split('/')
  const w = wanted.split('/')
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '#') return true
    if (i >= w.length) return false
    if (w[i] === '#') return false
    if (a[i] === '+') continue
    if (w[i] !== a[i]) return false
  }
  return a.length === w.length
}

function allowedFilter (client) {
  return client && Object.hasOwn(acl, client.harnessUser) ? acl[client.harnessUser] : null
}

const broker = await Aedes.createBroker(config.options || {})

broker.authenticate = (client, username, password, callback) => {
  if (username === undefined || username === null) {
    const error = new Error('anonymous clients are not allowed')
    error.returnCode = 5 // not authorized
    return callback(error, null)
  }
  if (!Object.hasOwn(users, username) || !password || password.toString('utf8') !== users[username]) {
    const error = new Error('bad user name or password')
    error.returnCode = 4
    return callback(error, null)
  }
  client.harnessUser = username
  callback(null, true)
}

broker.authorizeSubscribe = (client, subscription, callback) => {
  const filter = allowedFilter(client)
  callback(null, filter !== null && (filter === '#' || covers(filter, subscription.topic)) ? subscription : null)
}

broker.authorizePublish = (client, packet, callback) => {
  if (packet.topic.startsWith('$SYS/')) return callback(new Error('$SYS/ topics are reserved')) // aedes' default
  if (!client) return callback(null) // the will of a client that is gone: checked when it was stored
  const filter = allowedFilter(client)
  callback(filter !== null && matches(filter, packet.topic) ? null : new Error(`not authorized to publish to ${packet.topic}`))
}

const servers = []

function listen (server, listener) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(listener.port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

function tlsOptions (listener) {
  const options = { cert: readFileSync(listener.cert), key: readFileSync(listener.key) }
  if (listener.ca) Object.assign(options, { ca: readFileSync(listener.ca), requestCert: true, rejectUnauthorized: true })
  return options
}

function webSocketOn (server) {
  const wss = new WebSocketServer({ server, handleProtocols: (offered) => (offered.has('mqtt') ? 'mqtt' : false) })
  wss.on('connection', (socket, request) => broker.handle(createWebSocketStream(socket), request))
  return server
}

for (const listener of config.listeners) {
  let server
  switch (listener.transport) {
    case 'tcp': server = createNetServer(broker.handle); break
    case 'tls': server = createTlsServer(tlsOptions(listener), broker.handle); break
    case 'ws': server = webSocketOn(createHttpServer()); break
    case 'wss': server = webSocketOn(createHttpsServer(tlsOptions(listener))); break
    default: throw new Error(`unknown transport ${listener.transport} of listener ${listener.name}`)
  }
  try {
    await listen(server, listener)
  } catch (error) {
    console.error(`listener ${listener.name} on ${host}:${listener.port}: ${error.message}`)
    process.exit(1)
  }
  servers.push(server)
  console.log(`listener ${listener.name} (${listener.transport}) on ${host}:${listener.port}`)
}
console.log(`aedes ${version} ready`)

function stop () {
  setTimeout(() => process.exit(0), 1000).unref() // clients that do not go away do not keep us
  for (const server of servers) {
    server.close()
    if (server.closeAllConnections) server.closeAllConnections()
  }
  broker.close(() => process.exit(0))
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
