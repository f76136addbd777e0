// Runs a TFJS graph model with TensorFlow.js itself (tfjs-core + tfjs-converter + the pure-JS CPU backend) in node.
// usage: node tfjs_run.js MODEL_JSON INPUT_F32 N,H,W,C OUTPUT_F32 NODE[,NODE...]
// INPUT_F32: little-endian float32 NHWC; OUTPUT_F32: the outputs' values concatenated, in NODE order.
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const converter = require('@tensorflow/tfjs-converter');

async function main() {
  const [modelPath, inputPath, shapeText, outputPath, nodesText] = process.argv.slice(2);
  await tf.setBackend('cpu');
  const document = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
  const specs = [];
  const shards = [];
  for (const group of document.weightsManifest) {
    for (const spec of group.weights) specs.push(spec);
    for (const shard of group.paths) shards.push(fs.readFileSync(path.join(path.dirname(modelPath), shard)));
  }
  const joined = Buffer.concat(shards);
  const weightData = joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength);
  const handler = tf.io.fromMemory({modelTopology: document.modelTopology, weightSpecs: specs, weightData,
                                    format: document.format, signature: document.signature});
  const model = await converter.loadGraphModel(handler);
  const raw = fs.readFileSync(inputPath);
  const values = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const input = tf.tensor(values, shapeText.split(',').map(Number), 'float32');
  const names = nodesText.split(',');
  let outputs = model.execute(input, names);
  if (!Array.isArray(outputs)) outputs = [outputs];
  const parts = outputs.map((t) => Buffer.from(t.dataSync().buffer));
  fs.writeFileSync(outputPath, Buffer.concat(parts));
}

main().catch((e) => { console.error(e); process.exit(1); });
