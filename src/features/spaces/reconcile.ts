import { spacesBehind } from "../../store/spaces.ts";
import { syncSpace, type SpaceDeps } from "./sync.ts";

export interface SpaceFinding {
  microdao_id: string;
  has_space: boolean;
  unplaced: number;
  /** With fix: whether the space was made or brought up to date. */
  fixed: boolean;
  error: string | null;
}

/**
 * MicroDAOs whose channels are not (all) in its space: channels made before spaces existed, or
 * a space sync cut short. With `fix`, each space is made and synced (`bun run reconcile --fix`).
 */
export async function reconcileSpaces(deps: SpaceDeps, fix: boolean): Promise<SpaceFinding[]> {
  const findings: SpaceFinding[] = [];
  for (const row of await spacesBehind(deps.sql)) {
    const finding: SpaceFinding = { ...row, fixed: false, error: null };
    if (fix) {
      try {
        await syncSpace(deps, row.microdao_id, { full: true });
        finding.fixed = true;
      } catch (err) {
        finding.error = err instanceof Error ? err.message : String(err);
      }
    }
    findings.push(finding);
  }
  return findings;
}

export function spaceReportLines(findings: SpaceFinding[]): string[] {
  return findings.map((f) => {
    const what = f.has_space ? `${f.unplaced} channel${f.unplaced === 1 ? "" : "s"} not in its space` : `no space yet (${f.unplaced} channel${f.unplaced === 1 ? "" : "s"})`;
    const outcome = f.fixed ? " (synced)" : f.error ? ` (not fixed: ${f.error})` : "";
    return `space  ${f.microdao_id}: ${what}${outcome}`;
  });
}

export const unresolvedSpaces = (findings: SpaceFinding[]) => findings.filter((f) => !f.fixed).length;
