// The runtime side is harmless: one node type that does nothing. The attack is in probe.html, which the
// editor loads into every page of the instance's editor.
module.exports = function (RED) {
  function ProbeNode(config) { RED.nodes.createNode(this, config); }
  RED.nodes.registerType('flowyard-probe', ProbeNode);
};
