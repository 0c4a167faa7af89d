// The default branch of a switch over a closed union: the compiler refuses the call while a member is unhandled, so
// adding an event or a movement kind lists every place that must handle it.
export function assertNever(value: never, what = 'value'): never {
  throw new Error(`unhandled ${what}: ${JSON.stringify(value)}`);
}
