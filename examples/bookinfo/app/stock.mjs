/**
 * Bookinfo `stock`: a gRPC service (`bookinfo.Stock/Check`, see stock-api.mjs) that says how many copies of a book
 * are in the warehouse. details.mjs calls it as a proxyless gRPC client (`xds:///stock:9090`): gRPC itself gets
 * the routes and endpoints from the control plane over xDS, no sidecar on the client side.
 *
 * Listens on 127.0.0.1:$PORT_GRPC (or $PORT).
 */
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { instanceName, listenPort } from './lib.mjs';
import { stockService } from './stock-api.mjs';

const me = instanceName('stock');
const copies = new Map([[0, 12]]);

const server = new Server();
server.addService(stockService, {
  Check(call, cb) {
    const id = Number(call.request?.productId);
    if (!Number.isInteger(id) || id < 0) return cb({ code: status.INVALID_ARGUMENT, details: 'productId must be a non-negative integer' });
    cb(null, { productId: id, available: copies.get(id) ?? 0, warehouse: 'Lisbon', instance: me });
  },
});
const port = listenPort('grpc', 9090);
server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, bound) => {
  if (err) {
    process.stderr.write(`stock: cannot listen on 127.0.0.1:${port}: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${me} serving gRPC on 127.0.0.1:${bound}\n`);
});
const stop = () => {
  server.tryShutdown(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
