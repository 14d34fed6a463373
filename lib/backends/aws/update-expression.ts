// Builds a DynamoDB UpdateExpression with its name and value placeholders from plain assignments.
import type { UpdateCommandInput } from '@aws-sdk/lib-dynamodb';

/** An attribute path, one name per level (`['history', '3', 'outcome']`). */
export type AttributePath = readonly string[];

/** One SET action: `path = value`, or `path = path + increment`. */
export type SetAction =
  | { readonly path: AttributePath; readonly value: unknown }
  | { readonly path: AttributePath; readonly increment: number };

/** One comparison of a condition, joined with AND: `path = value`, `path < value`. */
export interface Comparison {
  readonly path: AttributePath;
  readonly op: '=' | '<';
  readonly value: unknown;
}

export interface UpdateSpec {
  readonly set: readonly SetAction[];
  readonly remove: readonly AttributePath[];
  readonly condition: readonly Comparison[];
}

/** The expression fields of an UpdateItem for `spec`: every name and value behind a placeholder. */
export function updateExpressionOf(
  spec: UpdateSpec,
): Required<
  Pick<
    UpdateCommandInput,
    'UpdateExpression' | 'ConditionExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'
  >
> {
  const names = new Map<string, string>();
  const values: Record<string, unknown> = {};
  const name = (path: AttributePath): string =>
    path
      .map((part) => {
        let placeholder = names.get(part);
        if (placeholder === undefined) {
          placeholder = `#n${names.size}`;
          names.set(part, placeholder);
        }
        return placeholder;
      })
      .join('.');
  const value = (v: unknown): string => {
    const placeholder = `:v${Object.keys(values).length}`;
    values[placeholder] = v;
    return placeholder;
  };
  const set = spec.set.map((action) =>
    'increment' in action
      ? `${name(action.path)} = ${name(action.path)} + ${value(action.increment)}`
      : `${name(action.path)} = ${value(action.value)}`,
  );
  const remove = spec.remove.map(name);
  const condition = spec.condition.map((c) => `${name(c.path)} ${c.op} ${value(c.value)}`);
  return {
    UpdateExpression: `SET ${set.join(', ')}${remove.length > 0 ? ` REMOVE ${remove.join(', ')}` : ''}`,
    ConditionExpression: condition.join(' AND '),
    ExpressionAttributeNames: Object.fromEntries([...names].map(([part, placeholder]) => [placeholder, part])),
    ExpressionAttributeValues: values,
  };
}
