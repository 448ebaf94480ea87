/**
 * The `bookinfo.Stock` gRPC API shared by the stock server (stock.mjs) and its proxyless client (details.mjs):
 * one unary method, `Check({ productId }) → { productId, available, warehouse, instance }`. Messages are JSON
 * (grpc-js accepts any serializer), so no .proto file or code generation is needed.
 */
const json = {
  serialize: (v) => Buffer.from(JSON.stringify(v)),
  deserialize: (b) => JSON.parse(b.toString('utf8')),
};

export const stockService = {
  Check: {
    path: '/bookinfo.Stock/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
};
