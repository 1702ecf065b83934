// @ts-check
import js from "@eslint/js";
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";

export default defineConfig(
  { linterOptions: { reportUnusedDisableDirectives: "error" } },
  { ignores: ["dist/", "tools/", ".tools/", "load/results/"] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    files: ["**/*.ts", "**/*.tsx"],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A promise nobody awaits loses its rejection: in a gateway that is a silent 500 or an unhandled crash.
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      eqeqeq: ["error", "always", { null: "ignore" }],
      // Callbacks wired before the object they call exists (a bus before its invalidator) need a late `let`.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
      // Output goes through pino; a stray console.log bypasses redaction and structured logs.
      "no-console": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
    },
  },
  {
    // k6 scripts run inside k6, not Node: these are its globals.
    files: ["load/k6/**/*.js"],
    languageOptions: { globals: { __ENV: "readonly", __VU: "readonly", __ITER: "readonly", open: "readonly", console: "readonly" } },
  },
  {
    // Command-line tools and the benchmark print to the terminal by design.
    files: ["src/cli/**", "load/**"],
    rules: { "no-console": "off" },
  },
);
