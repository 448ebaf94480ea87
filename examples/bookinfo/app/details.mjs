/**
 * Bookinfo `details`: GET /details/<id> → the book's details (author, year, pages, publisher, ISBNs) and its
 * stock, which it asks the gRPC `stock` service for through proxyless gRPC: with GRPC_XDS_BOOTSTRAP set (the
 * runtime writes one per replica) it dials `xds:///stock:9090` and @grpc/grpc-js-xds resolves it over xDS.
 * When stock does not answer (no bootstrap, deadline, error) the details still answer, with `stock.error`.
 */
import { instanceName, sendJson, serve } from './lib.mjs';

const me = instanceName('details');
const STOCK_TARGET = process.env.STOCK_TARGET ?? 'xds:///stock:9090';
const STOCK_DEADLINE_MS = 1000;

let stockClient;
let stockSetupError;
if (process.env.GRPC_XDS_BOOTSTRAP || !STOCK_TARGET.startsWith('xds:')) {
  try {
    const grpc = await import('@grpc/grpc-js');
    if (STOCK_TARGET.startsWith('xds:')) (await import('@grpc/grpc-js-xds')).register();
    const { stockService } = await import('./stock-api.mjs');
    const Client = grpc.makeGenericClientConstructor(stockService, 'Stock');
    // Proxyless: gRPC connects to the endpoints xDS gives it, not through the sidecar HTTP_PROXY points at.
    stockClient = new Client(STOCK_TARGET, grpc.credentials.createInsecure(), { 'grpc.enable_http_proxy': 0 });
  } catch (e) {
    stockSetupError = `cannot set up the gRPC client for ${STOCK_TARGET}: ${e.message}`;
  }
} else {
  stockSetupError = 'GRPC_XDS_BOOTSTRAP is not set: no xDS for proxyless gRPC';
}
if (stockSetupError) process.stderr.write(`details: ${stockSetupError}\n`);

function checkStock(productId) {
  if (!stockClient) return Promise.resolve({ error: stockSetupError });
  return new Promise((resolve) => {
    stockClient.Check({ productId }, { deadline: Date.now() + STOCK_DEADLINE_MS }, (err, res) => {
      resolve(err ? { error: `stock ${STOCK_TARGET}: gRPC status ${err.code} ${err.details}` } : res);
    });
  });
}

serve(
  'details',
  [
    [
      /^\/details\/(\d+)$/,
      async (req, res, m) => {
        const id = Number(m[1]);
        const stock = await checkStock(id);
        sendJson(res, 200, {
          id,
          author: 'William Shakespeare',
          year: 1595,
          type: 'paperback',
          pages: 200,
          publisher: 'PublisherA',
          language: 'English',
          'ISBN-10': '1234567890',
          'ISBN-13': '123-1234567890',
          instance: me,
          stock,
        });
      },
    ],
  ],
  { onStop: () => stockClient?.close() },
);
