// Validates PodMonitor manifests against the Prometheus Operator's CRD schema (from
// @kubernetes-models/prometheus-operator, offline): kubernetes-validate has no schema for
// custom resources. Run by scripts/check-deploy-kit.sh:
//   node tests/js/validate-podmonitor.mjs examples/deploy/kubernetes/podmonitor.yaml
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";

let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0].message}`);
    const manifest = doc.toJS();
    if (manifest?.kind !== "PodMonitor") continue;
    new PodMonitor(manifest).validate(); // throws with the failing path
    checked += 1;
  }
}
if (checked === 0) throw new Error("no PodMonitor found");
console.log(`${checked} PodMonitor manifest(s) valid`);
