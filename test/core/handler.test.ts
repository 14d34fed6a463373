// The handler string is built in one place, from HTC-Grid's two keys.
import { ConfigError, handlerString, parseHandler } from '../../lib/core';

describe('handler string', () => {
  it('joins the file and function names', () => {
    expect(handlerString('portfolio_pricing_engine', 'lambda_handler')).toBe('portfolio_pricing_engine.lambda_handler');
  });

  it('drops a source extension from the file name', () => {
    expect(handlerString('mock_compute_engine.py', 'lambda_handler')).toBe('mock_compute_engine.lambda_handler');
  });

  it("accepts HTC-Grid's habit of a full module.function in the file name with an empty function name", () => {
    expect(handlerString('portfolio_pricing_engine.lambda_handler', '')).toBe(
      'portfolio_pricing_engine.lambda_handler',
    );
  });

  it('rejects empty names with the key to set', () => {
    expect(() => handlerString('', 'lambda_handler')).toThrow(ConfigError);
    expect(() => handlerString('', 'lambda_handler')).toThrow(/lambda_handler_file_name is empty/);
    expect(() => handlerString('worker', '')).toThrow(/lambda_handler_function_name is empty/);
    expect(() => handlerString('worker', 'not-a-function')).toThrow(/is not a function name/);
  });

  it('parses nested module paths at the last dot', () => {
    expect(parseHandler('pkg/sub.module.handler')).toEqual({ module: 'pkg/sub.module', function: 'handler' });
    expect(() => parseHandler('nodot')).toThrow(/<file>\.<function>/);
  });
});
