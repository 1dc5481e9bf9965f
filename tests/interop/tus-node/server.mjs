// An independent tus 1.0.0 server for ScanStation's interoperability test: @tus/server + @tus/file-store.
//   node server.mjs PORT DIRECTORY [EXPIRATION_MS]
// Listens on 127.0.0.1:PORT, endpoint /files/, stores each upload as DIRECTORY/<id> (plus <id>.json).
// Prints "listening PORT" once ready (PORT 0 picks a free port) so the test knows when to start.
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const [portArg, directory, expirationArg] = process.argv.slice(2);
if (portArg === undefined || directory === undefined) {
  console.error('usage: node server.mjs PORT DIRECTORY [EXPIRATION_MS]');
  process.exit(2);
}

const datastore = new FileStore({
  directory,
  expirationPeriodInMilliseconds: expirationArg ? Number(expirationArg) : 0,
});
// relativeLocation: the client must resolve "/files/<id>" against its endpoint (which may be a proxy)
const tus = new Server({ path: '/files', datastore, relativeLocation: true });
const server = tus.listen({ host: '127.0.0.1', port: Number(portArg) }, () => {
  console.log(`listening ${server.address().port}`);
});

// exit at once: server.close() would wait for idle keep-alive connections
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
