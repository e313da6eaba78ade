// Types for parse-prometheus-text-format (the package ships none): see test/tools/prom-lint.ts.
declare module "parse-prometheus-text-format" {
  export default function parsePrometheusTextFormat(text: string): unknown[];
}
