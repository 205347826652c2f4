// The tests' trace collector is the product's receiver (weft traces).
export * from '../../cli/traces/otlp-receiver.ts';
