// Which metric names the monitoring config queries: PromQL from the Prometheus rules, the Grafana alert rule and the
// dashboards. Used to prove every one of them is exported by the service (or declared external below).
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './stack.ts';

/** Names that come from Prometheus itself or node-exporter, not from the service. */
export const EXTERNAL_METRICS = new Set([
  'up',
  'ALERTS',
  'node_boot_time_seconds',
  'node_cpu_seconds_total',
  'node_disk_read_bytes_total',
  'node_disk_written_bytes_total',
  'node_filesystem_avail_bytes',
  'node_filesystem_size_bytes',
  'node_load1',
  'node_memory_MemAvailable_bytes',
  'node_memory_MemTotal_bytes',
  'node_memory_SwapFree_bytes',
  'node_memory_SwapTotal_bytes',
  'node_network_receive_bytes_total',
  'node_network_transmit_bytes_total',
]);

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'inf', 'nan', 'Inf', 'NaN']);

/** Metric names in one PromQL expression (functions, keywords, labels, strings and durations removed). */
export function metricNamesIn(expr: string): string[] {
  let s = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  s = s.replace(/\{[^}]*\}/g, ' ');
  s = s.replace(/\[[^\]]*\]/g, ' ');
  s = s.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  s = s.replace(/\boffset\s+\S+/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = m;
    if (call || KEYWORDS.has(name!)) continue;
    names.add(name!);
  }
  return [...names];
}

/** `expr:` values of a Prometheus/Grafana rules YAML file, single-line or block scalars. */
export function exprsInYaml(text: string): string[] {
  const lines = text.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)(?:-\s+)?expr:\s*(.*)$/.exec(lines[i]!);
    if (!m) continue;
    const indent = m[1]!.length;
    const value = m[2]!.trim();
    if (/^[|>][-+]?$/.test(value)) {
      const block: string[] = [];
      while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || lines[i + 1]!.search(/\S/) > indent)) block.push(lines[++i]!);
      out.push(block.join('\n'));
    } else {
      out.push(value.replace(/^'(.*)'$/, '$1').replace(/^"(.*)"$/, '$1'));
    }
  }
  return out;
}

export interface Usage {
  source: string;
  expr: string;
  names: string[];
}

interface DashboardTarget { expr?: string; datasource?: { type?: string } }
interface DashboardPanel { title?: string; datasource?: { type?: string }; targets?: DashboardTarget[]; panels?: DashboardPanel[] }

/** Every PromQL expression in rules, the Grafana bridge rule and the dashboards, with its metric names. */
export function monitoringUsage(): Usage[] {
  const usages: Usage[] = [];
  const add = (source: string, expr: string) => usages.push({ source, expr, names: metricNamesIn(expr) });

  const rulesDir = path.join(ROOT, 'monitoring', 'prometheus', 'rules');
  for (const f of readdirSync(rulesDir).filter((f) => f.endsWith('.yml'))) {
    for (const e of exprsInYaml(readFileSync(path.join(rulesDir, f), 'utf8'))) add(`rules/${f}`, e);
  }
  const grafanaRules = path.join(ROOT, 'monitoring', 'grafana', 'provisioning', 'alerting', 'rules.yml');
  for (const e of exprsInYaml(readFileSync(grafanaRules, 'utf8'))) add('grafana alerting/rules.yml', e);

  const dashDir = path.join(ROOT, 'monitoring', 'grafana', 'dashboards');
  for (const f of readdirSync(dashDir).filter((f) => f.endsWith('.json'))) {
    const dash = JSON.parse(readFileSync(path.join(dashDir, f), 'utf8')) as { panels: DashboardPanel[] };
    const walk = (panels: DashboardPanel[]) => {
      for (const p of panels) {
        for (const t of p.targets ?? []) {
          const type = t.datasource?.type ?? p.datasource?.type ?? 'prometheus';
          if (type === 'prometheus' && t.expr) add(`${f}: ${p.title ?? '?'}`, t.expr);
        }
        if (p.panels) walk(p.panels);
      }
    };
    walk(dash.panels);
  }
  return usages;
}

/** `# TYPE name kind` lines of a Prometheus text exposition. */
export function exportedTypes(exposition: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
  return types;
}

/** Used names that are neither exported (histogram/summary series suffixes resolved) nor declared external. */
export function unknownNames(used: Iterable<string>, types: Map<string, string>): string[] {
  const missing: string[] = [];
  for (const name of used) {
    if (types.has(name) || EXTERNAL_METRICS.has(name)) continue;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const kind = types.get(base);
    if (base !== name && (kind === 'histogram' || (kind === 'summary' && !name.endsWith('_bucket')))) continue;
    missing.push(name);
  }
  return missing.sort();
}
