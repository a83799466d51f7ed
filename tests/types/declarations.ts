// `Outbox` is declared by hand in pkg/index.d.ts (wasm-bindgen cannot declare a generic class); this keeps it
// in step with the class wasm-bindgen generates, compiled by `make test` like the other files here.
import type { Outbox } from "../../pkg/index.js";
import type { Outbox as GeneratedOutbox } from "../../pkg/wasm/outbox_sync.js";

// A method the Rust side exports but pkg/index.d.ts does not declare shows up here by name.
type Undeclared = Exclude<keyof GeneratedOutbox, keyof Outbox>;
export const everyGeneratedMethodIsDeclared: [Undeclared] extends [never] ? true : Undeclared = true;

// The methods pkg/index.js adds in JavaScript, and only those, are declared beyond the generated ones.
type AddedInJs = Exclude<keyof Outbox, keyof GeneratedOutbox>;
type Expected = "settled" | "watchFailed" | "watchConflicts";
export const onlyTheJsMethodsAreAdded: [AddedInJs, Expected] extends [Expected, AddedInJs] ? true : AddedInJs = true;
